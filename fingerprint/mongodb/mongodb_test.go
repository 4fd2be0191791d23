package mongodb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/reachscan/reach/fingerprint"
	"github.com/reachscan/reach/fingerprint/internal/grabtest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// fake is a server that answers commands by name ("Opcodes": OP_MSG in
// OP_MSG, OP_QUERY in OP_REPLY) and records the opcodes it received.
type fake struct {
	replies  map[string]bson.D
	checksum bool // set the OP_MSG checksumPresent flag and append 4 bytes
	ops      []int32
}

func (f *fake) serve(t testing.TB, c net.Conn) {
	for {
		var hdr [headerLen]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		body := make([]byte, n-headerLen)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		op := int32(binary.LittleEndian.Uint32(hdr[12:]))
		f.ops = append(f.ops, op)
		var doc bson.Raw
		switch op {
		case opMsg:
			if binary.LittleEndian.Uint32(body) != 0 || body[4] != 0 {
				t.Errorf("op_msg flags or section kind: %x", body[:5])
			}
			doc = bson.Raw(body[5:])
		case opQuery:
			i := bytes.IndexByte(body[4:], 0)
			if string(body[4:4+i]) != "admin.$cmd" {
				t.Errorf("op_query on %q", body[4:4+i])
			}
			doc = bson.Raw(body[4+i+1+8:])
		default:
			t.Errorf("opcode %d", op)
			return
		}
		if err := doc.Validate(); err != nil {
			t.Errorf("request bson: %v", err)
			return
		}
		name := doc.Index(0).Key()
		if op == opMsg && doc.Lookup("$db").StringValue() != "admin" {
			t.Errorf("%s without $db admin", name)
		}
		reply, ok := f.replies[name]
		if !ok {
			reply = bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "no such command: '" + name + "'"}, {Key: "code", Value: int32(59)}}
		}
		out, err := bson.Marshal(reply)
		if err != nil {
			t.Error(err)
			return
		}
		var msg []byte
		msg = binary.LittleEndian.AppendUint32(msg, 0)
		msg = binary.LittleEndian.AppendUint32(msg, 99)
		msg = append(msg, hdr[4:8]...) // responseTo
		if op == opMsg {
			flags := uint32(0)
			if f.checksum {
				flags = checksumBit
			}
			msg = binary.LittleEndian.AppendUint32(msg, opMsg)
			msg = binary.LittleEndian.AppendUint32(msg, flags)
			msg = append(msg, 0)
			msg = append(msg, out...)
			if f.checksum {
				msg = append(msg, 1, 2, 3, 4)
			}
		} else {
			msg = binary.LittleEndian.AppendUint32(msg, opReply)
			msg = append(msg, make([]byte, 16)...)         // responseFlags, cursorID, startingFrom
			msg = binary.LittleEndian.AppendUint32(msg, 1) // numberReturned
			msg = append(msg, out...)
		}
		binary.LittleEndian.PutUint32(msg, uint32(len(msg)))
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}

var (
	hello7 = bson.D{{Key: "isWritablePrimary", Value: true}, {Key: "maxBsonObjectSize", Value: int32(16777216)},
		{Key: "maxMessageSizeBytes", Value: int32(48000000)}, {Key: "localTime", Value: bson.DateTime(1717000000000)},
		{Key: "connectionId", Value: int32(5)}, {Key: "minWireVersion", Value: int32(0)},
		{Key: "maxWireVersion", Value: int32(21)}, {Key: "readOnly", Value: false}, {Key: "ok", Value: 1.0}}
	build7 = bson.D{{Key: "version", Value: "7.0.5"}, {Key: "gitVersion", Value: "7809d71e84e314b497f282ea8aa06d7ded3eb205"},
		{Key: "versionArray", Value: bson.A{int32(7), int32(0), int32(5), int32(0)}}, {Key: "ok", Value: 1.0}}
	dbs = bson.D{{Key: "databases", Value: bson.A{bson.D{{Key: "name", Value: "admin"}}, bson.D{{Key: "name", Value: "config"}},
		bson.D{{Key: "name", Value: "local"}}, bson.D{{Key: "name", Value: "shop"}}}}, {Key: "ok", Value: 1.0}}
	unauth = bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "Command listDatabases requires authentication"},
		{Key: "code", Value: int32(13)}, {Key: "codeName", Value: "Unauthorized"}}
)

func with(d bson.D, e ...bson.E) bson.D {
	return append(slices.Clone(d[:len(d)-1]), append(e, d[len(d)-1])...)
}

func TestGrab(t *testing.T) {
	tests := []struct {
		name    string
		fake    fake
		want    fingerprint.Result
		wantOps []int32
	}{
		{
			name: "open", fake: fake{replies: map[string]bson.D{"hello": hello7, "buildInfo": build7, "listDatabases": dbs}, checksum: true},
			want: fingerprint.Result{Product: "MongoDB", Version: "7.0.5", Auth: fingerprint.AuthNone,
				Details: map[string]string{"max_wire_version": "21", "databases": "4"}},
			wantOps: []int32{opMsg, opMsg, opMsg},
		},
		{
			name: "auth", fake: fake{replies: map[string]bson.D{"hello": with(hello7, bson.E{Key: "setName", Value: "rs0"}), "buildInfo": build7, "listDatabases": unauth}},
			want: fingerprint.Result{Product: "MongoDB", Version: "7.0.5", Auth: fingerprint.AuthRequired,
				Details: map[string]string{"max_wire_version": "21", "set_name": "rs0", "error": "Command listDatabases requires authentication"}},
		},
		{
			// 4.0 knows OP_MSG but not hello: isMaster goes in OP_QUERY
			name: "no hello", fake: fake{replies: map[string]bson.D{
				"isMaster":      {{Key: "ismaster", Value: true}, {Key: "maxWireVersion", Value: int32(7)}, {Key: "ok", Value: 1.0}},
				"buildInfo":     {{Key: "version", Value: "4.0.28"}, {Key: "ok", Value: 1.0}},
				"listDatabases": dbs}},
			want: fingerprint.Result{Product: "MongoDB", Version: "4.0.28", Auth: fingerprint.AuthNone,
				Details: map[string]string{"max_wire_version": "7", "databases": "4"}},
			wantOps: []int32{opMsg, opQuery, opMsg, opMsg},
		},
		{
			name: "mongos", fake: fake{replies: map[string]bson.D{"hello": with(hello7, bson.E{Key: "msg", Value: "isdbgrid"}), "buildInfo": build7, "listDatabases": unauth}},
			want: fingerprint.Result{Product: "MongoDB", Version: "7.0.5", Auth: fingerprint.AuthRequired,
				Details: map[string]string{"max_wire_version": "21", "mongos": "yes", "error": "Command listDatabases requires authentication"}},
		},
		{
			name: "ferretdb", fake: fake{replies: map[string]bson.D{"hello": hello7,
				"buildInfo":     {{Key: "version", Value: "7.0.77"}, {Key: "ferretdb", Value: bson.D{{Key: "version", Value: "v1.24.0"}}}, {Key: "ok", Value: 1.0}},
				"listDatabases": dbs}},
			want: fingerprint.Result{Product: "FerretDB", Version: "v1.24.0", Auth: fingerprint.AuthNone,
				Details: map[string]string{"max_wire_version": "21", "databases": "4"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := grabtest.Run(t, New(), tc.fake.serve, 2*time.Second, 0)
			if err != nil {
				t.Fatal(err)
			}
			if res.Service != "mongodb" || res.Product != tc.want.Product || res.Version != tc.want.Version || res.Auth != tc.want.Auth {
				t.Errorf("got %q %q %q auth %q, want mongodb %q %q auth %q", res.Service, res.Product, res.Version, res.Auth,
					tc.want.Product, tc.want.Version, tc.want.Auth)
			}
			if len(res.Details) != len(tc.want.Details) {
				t.Errorf("details %q, want %q", res.Details, tc.want.Details)
			}
			for k, v := range tc.want.Details {
				if res.Details[k] != v {
					t.Errorf("details[%q] = %q, want %q", k, res.Details[k], v)
				}
			}
			if tc.wantOps != nil && !slices.Equal(tc.fake.ops, tc.wantOps) {
				t.Errorf("opcodes %v, want %v", tc.fake.ops, tc.wantOps)
			}
			if _, err := ParseReply(res.Banner); err != nil {
				t.Errorf("banner is not the hello reply: %v", err)
			}
		})
	}
}

// readMessage reads one whole request, by the length in its header.
func readMessage(s *grabtest.Server) error {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(s.Conn, hdr[:]); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, s.Conn, int64(binary.LittleEndian.Uint32(hdr[:]))-headerLen)
	return err
}

func TestNotMongo(t *testing.T) {
	for _, reply := range []string{
		"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
		"-ERR unknown command\r\n\r\n\r\n\r\n\r\n\r\n",
	} {
		res, _, err := grabtest.Run(t, New(), grabtest.Script(readMessage, grabtest.Send(reply)), 2*time.Second, 0)
		if !errors.Is(err, fingerprint.ErrNotRecognised) || res.Service != "" {
			t.Errorf("reply %q: got %+v, %v", reply, res, err)
		}
	}
}

func TestHostile(t *testing.T) {
	// an OP_MSG header announcing 100000 bytes
	grabtest.RunHostile(t, New(), grabtest.Hostile{Prefix: "\xa0\x86\x01\x00\x00\x00\x00\x00\x01\x00\x00\x00\xdd\x07\x00\x00"})
}

func msgOf(t testing.TB, op int32, flags uint32, sections ...[]byte) []byte {
	b := make([]byte, 12, 64)
	b = binary.LittleEndian.AppendUint32(b, uint32(op))
	if op == opMsg {
		b = binary.LittleEndian.AppendUint32(b, flags)
	} else {
		b = append(b, make([]byte, 20)...)
	}
	for _, s := range sections {
		b = append(b, s...)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	return b
}

func mustBSON(t testing.TB, d bson.D) []byte {
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseReply checks that ParseReply never panics and that a document it
// returns is valid BSON lying inside the message.
func FuzzParseReply(f *testing.F) {
	ok := mustBSON(f, bson.D{{Key: "ok", Value: 1.0}})
	seq := append(binary.LittleEndian.AppendUint32(nil, uint32(4+2+len(ok))), append([]byte("d\x00"), ok...)...)
	f.Add(msgOf(f, opMsg, 0, []byte{0}, ok))                               // OP_MSG body section
	f.Add(msgOf(f, opMsg, checksumBit, []byte{0}, ok, []byte{1, 2, 3, 4})) // checksum after the sections
	f.Add(msgOf(f, opMsg, 0, []byte{1}, seq, []byte{0}, ok))               // document sequence, then body
	f.Add(msgOf(f, opReply, 0, ok))                                        // OP_REPLY
	f.Add(msgOf(f, opMsg, 0, []byte{0}, ok[:len(ok)-1]))                   // document cut short
	f.Add(msgOf(f, opMsg, 0, []byte{7}))                                   // unknown section kind
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))                      // another protocol
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParseReply(data)
		if err != nil {
			return
		}
		if doc.Validate() != nil || !bytes.Contains(data, doc) || len(doc) > len(data)-headerLen {
			t.Errorf("document %x from %x", doc, data)
		}
	})
}
