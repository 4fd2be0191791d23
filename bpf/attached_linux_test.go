package bpf

import "testing"

// TestProgramName: the name the kernel reports for the loaded matcher, by
// which a second scan recognises it, is the program's name in xdp.c.
func TestProgramName(t *testing.T) {
	spec, err := loadReachXDP()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spec.Programs[ProgramName]; !ok || len(spec.Programs) != 1 {
		t.Errorf("programs %v, want exactly %s", spec.Programs, ProgramName)
	}
	if len(ProgramName) > 15 {
		t.Errorf("%s is longer than the kernel's 15-byte program name", ProgramName)
	}
}
