package send

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nanoClock sleeps with clock_nanosleep(2) on the calling thread. A sender
// thread is locked to its OS thread; for short waits (≤ rawSleepMax) the
// call is made without telling the Go scheduler (RawSyscall), so the runtime
// neither hands the thread's P to another thread nor wakes one to take it:
// at 10 kpps that halves the system calls and removes two futex wake-ups
// per batch. Longer waits use an ordinary blocking call, so a sender paced
// at a few packets per second never holds up the scheduler or the GC.
type nanoClock struct{ realClock }

// rawSleepMax is the longest wait made invisible to the scheduler, well
// below the runtime's 10 ms preemption slice.
const rawSleepMax = 6 * int64(time.Millisecond)

func (nanoClock) Sleep(d int64) {
	ts := unix.NsecToTimespec(d)
	for {
		var errno unix.Errno
		if d <= rawSleepMax {
			_, _, errno = unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, 0, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		} else {
			_, _, errno = unix.Syscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, 0, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		}
		if errno != unix.EINTR {
			return
		}
	}
}

// ThreadClock is the clock sender threads use: monotonic time and sleeps
// that block only the calling OS thread.
func ThreadClock() Clock { return nanoClock{realClock{base: time.Now()}} }
