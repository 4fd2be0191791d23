// Package mongodb identifies MongoDB servers by the wire protocol (MongoDB
// Wire Protocol reference: "Standard Message Header", OP_MSG, and the
// legacy OP_QUERY and OP_REPLY), using the BSON package of the Go driver
// only to encode commands and read replies.
//
// The grabber sends hello in an OP_MSG; a server too old to know hello
// answers with an error document, and then gets the legacy isMaster in an
// OP_QUERY. It then runs buildInfo (the version; allowed without
// credentials) and listDatabases: ok means anyone can list the databases
// (Auth none), error 13 Unauthorized means credentials are required.
//
// Details keys:
//
//	max_wire_version  the highest wire protocol version the server speaks ("21")
//	set_name          the replica set name, when the server is in one
//	mongos            "yes" when the server is a mongos router
//	databases         the number of databases listDatabases returned
//	error             the errmsg of a refused listDatabases
package mongodb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/reachscan/reach/fingerprint"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Wire protocol constants ("Standard Message Header", "Opcodes").
const (
	headerLen   = 16   // messageLength, requestID, responseTo, opCode: int32 each, little endian
	opReply     = 1    // OP_REPLY, the answer to OP_QUERY
	opQuery     = 2004 // OP_QUERY, legacy; still accepted for hello and isMaster
	opMsg       = 2013 // OP_MSG, MongoDB 3.6 and later
	checksumBit = 1    // OP_MSG flagBits: a CRC-32C follows the sections
	// maxReply bounds a reply read into memory, in bytes; a listDatabases
	// reply with names only is about 30 bytes per database. Only the first
	// MaxBanner bytes of the hello reply are kept.
	maxReply = 1 << 20
	// unauthorized is the server error code 13, Unauthorized.
	unauthorized = 13
)

// Grabber identifies MongoDB; it is safe for concurrent use.
type Grabber struct{}

// New returns a MongoDB grabber.
func New() *Grabber { return &Grabber{} }

// Name returns "mongodb".
func (*Grabber) Name() string { return "mongodb" }

// Ports returns 27017, the default port of mongod and mongos.
func (*Grabber) Ports() []uint16 { return []uint16{27017} }

// session runs commands on one connection.
type session struct {
	conn   net.Conn
	max    int
	legacy bool // use OP_QUERY: the server answered OP_MSG with OP_REPLY
	id     int32
}

// Grab speaks the wire protocol on conn.
func (g *Grabber) Grab(ctx context.Context, conn net.Conn, t fingerprint.Target) (fingerprint.Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fingerprint.Result{}, fmt.Errorf("mongodb: set deadline: %w", err)
		}
	}
	s := &session{conn: conn, max: max(maxReply, t.Limit())}
	hello, raw, err := s.command(bson.D{{Key: "hello", Value: int32(1)}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return fingerprint.Result{}, fmt.Errorf("mongodb: hello: %w", err)
	}
	if !isOK(hello) {
		// Before 4.4.2 there is no hello; isMaster in OP_QUERY is what
		// every server understands.
		hello, raw, err = s.query(bson.D{{Key: "isMaster", Value: int32(1)}})
		if err != nil {
			return fingerprint.Result{}, fmt.Errorf("mongodb: ismaster: %w", err)
		}
		if !isOK(hello) {
			return fingerprint.Result{}, fmt.Errorf("mongodb: ismaster failed: %w", fingerprint.ErrNotRecognised)
		}
	}
	res := fingerprint.Result{Service: "mongodb", Product: "MongoDB", Details: map[string]string{}}
	res.Banner = raw[:min(len(raw), t.Limit())]
	describeHello(&res, hello)

	info, _, err := s.command(bson.D{{Key: "buildInfo", Value: int32(1)}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return res, fmt.Errorf("mongodb: buildinfo: %w", err)
	}
	describeBuildInfo(&res, info)

	dbs, _, err := s.command(bson.D{{Key: "listDatabases", Value: int32(1)}, {Key: "nameOnly", Value: true}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return res, fmt.Errorf("mongodb: listdatabases: %w", err)
	}
	describeListDatabases(&res, dbs, t.Limit())
	return res, nil
}

// isOK reports whether a command reply has ok: 1.
func isOK(doc bson.Raw) bool {
	v, err := doc.LookupErr("ok")
	if err != nil {
		return false
	}
	f, ok := v.AsFloat64OK()
	return ok && f == 1
}

// describeHello records what hello or isMaster says about the server.
func describeHello(res *fingerprint.Result, doc bson.Raw) {
	if v, err := doc.LookupErr("maxWireVersion"); err == nil {
		if n, ok := v.AsInt64OK(); ok {
			res.Details["max_wire_version"] = strconv.FormatInt(n, 10)
		}
	}
	if v, err := doc.LookupErr("setName"); err == nil {
		if s, ok := v.StringValueOK(); ok {
			res.Details["set_name"] = s
		}
	}
	if v, err := doc.LookupErr("msg"); err == nil && v.StringValue() == "isdbgrid" {
		res.Details["mongos"] = "yes"
	}
}

// describeBuildInfo takes the version from buildInfo. FerretDB answers
// with a MongoDB-compatible version and its own in a "ferretdb" document.
func describeBuildInfo(res *fingerprint.Result, doc bson.Raw) {
	if !isOK(doc) {
		return
	}
	if v, err := doc.LookupErr("version"); err == nil {
		res.Version, _ = v.StringValueOK()
	}
	if v, err := doc.LookupErr("ferretdb", "version"); err == nil {
		res.Product = "FerretDB"
		res.Version, _ = v.StringValueOK()
	}
}

// describeListDatabases sets Auth from listDatabases: ok is Auth none with
// the number of databases, error 13 (or a message about authentication) is
// Auth required.
func describeListDatabases(res *fingerprint.Result, doc bson.Raw, limit int) {
	if isOK(doc) {
		res.Auth = fingerprint.AuthNone
		if v, err := doc.LookupErr("databases"); err == nil {
			if arr, ok := v.ArrayOK(); ok {
				if vals, err := arr.Values(); err == nil {
					res.Details["databases"] = strconv.Itoa(len(vals))
				}
			}
		}
		return
	}
	msg, _ := doc.Lookup("errmsg").StringValueOK()
	code, _ := doc.Lookup("code").AsInt64OK()
	if msg != "" {
		res.Details["error"] = msg[:min(len(msg), limit)]
	}
	if code == unauthorized || strings.Contains(strings.ToLower(msg), "auth") {
		res.Auth = fingerprint.AuthRequired
	}
}

// command runs cmd (which must carry $db) in an OP_MSG, or in an OP_QUERY
// on admin.$cmd when the session is legacy, and returns the reply document
// and the whole reply message.
func (s *session) command(cmd bson.D) (bson.Raw, []byte, error) {
	if s.legacy {
		legacy := make(bson.D, 0, len(cmd))
		for _, e := range cmd {
			if e.Key != "$db" {
				legacy = append(legacy, e)
			}
		}
		return s.query(legacy)
	}
	body, err := bson.Marshal(cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("encode: %w", err)
	}
	msg := make([]byte, 0, headerLen+5+len(body))
	msg = s.header(msg, opMsg)
	msg = binary.LittleEndian.AppendUint32(msg, 0) // flagBits
	msg = append(msg, 0)                           // section kind 0: body
	msg = append(msg, body...)
	return s.roundTrip(msg, opMsg)
}

// query runs cmd in an OP_QUERY on admin.$cmd.
func (s *session) query(cmd bson.D) (bson.Raw, []byte, error) {
	body, err := bson.Marshal(cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("encode: %w", err)
	}
	msg := make([]byte, 0, headerLen+24+len(body))
	msg = s.header(msg, opQuery)
	msg = binary.LittleEndian.AppendUint32(msg, 0) // flags
	msg = append(msg, "admin.$cmd\x00"...)         // fullCollectionName
	msg = binary.LittleEndian.AppendUint32(msg, 0) // numberToSkip
	msg = binary.LittleEndian.AppendUint32(msg, 1) // numberToReturn
	msg = append(msg, body...)
	return s.roundTrip(msg, opQuery)
}

// header appends a message header with a zero length and a new request id.
func (s *session) header(b []byte, op int32) []byte {
	s.id++
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(s.id))
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint32(b, uint32(op))
}

var errTooLong = errors.New("reply longer than the limit")

// roundTrip fills in the length of msg (a request of opcode req), sends it
// and reads one reply. A server that answers OP_MSG with OP_REPLY gets
// OP_QUERY from then on.
func (s *session) roundTrip(msg []byte, req int32) (bson.Raw, []byte, error) {
	binary.LittleEndian.PutUint32(msg, uint32(len(msg)))
	if _, err := s.conn.Write(msg); err != nil {
		return nil, nil, fmt.Errorf("send: %w", err)
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(s.conn, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("read reply: %w", err)
	}
	n := int64(int32(binary.LittleEndian.Uint32(hdr[:])))
	op := int32(binary.LittleEndian.Uint32(hdr[12:]))
	if n < headerLen || (op != opMsg && op != opReply) {
		return nil, nil, fmt.Errorf("reply header %x: %w", hdr, fingerprint.ErrNotRecognised)
	}
	if n > int64(s.max) {
		return nil, nil, fmt.Errorf("reply of %d bytes: %w", n, errTooLong)
	}
	reply := make([]byte, n)
	copy(reply, hdr[:])
	if _, err := io.ReadFull(s.conn, reply[headerLen:]); err != nil {
		return nil, nil, fmt.Errorf("read reply: %w", err)
	}
	doc, err := ParseReply(reply)
	if err != nil {
		return nil, nil, err
	}
	if req == opMsg && op == opReply {
		s.legacy = true
	}
	return doc, reply, nil
}

// ParseReply returns the body document of an OP_MSG reply (the kind 0
// section) or the first document of an OP_REPLY, checked to be valid BSON.
// The document is a sub-slice of msg.
func ParseReply(msg []byte) (bson.Raw, error) {
	if len(msg) < headerLen || int(binary.LittleEndian.Uint32(msg)) != len(msg) {
		return nil, fmt.Errorf("reply length does not match: %w", fingerprint.ErrNotRecognised)
	}
	op := int32(binary.LittleEndian.Uint32(msg[12:]))
	b := msg[headerLen:]
	switch op {
	case opMsg:
		// uint32 flagBits, sections, optional uint32 checksum
		if len(b) < 4 {
			return nil, fmt.Errorf("op_msg without flags: %w", fingerprint.ErrNotRecognised)
		}
		flags := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if flags&checksumBit != 0 {
			if len(b) < 4 {
				return nil, fmt.Errorf("op_msg without checksum: %w", fingerprint.ErrNotRecognised)
			}
			b = b[:len(b)-4]
		}
		for len(b) > 0 {
			kind, sec := b[0], b[1:]
			switch kind {
			case 0:
				doc, _, err := document(sec)
				return doc, err
			case 1: // document sequence: int32 size (counting itself), cstring, documents
				if len(sec) < 4 {
					return nil, fmt.Errorf("op_msg sequence cut short: %w", fingerprint.ErrNotRecognised)
				}
				size := int(binary.LittleEndian.Uint32(sec))
				if size < 4 || size > len(sec) {
					return nil, fmt.Errorf("op_msg sequence of %d bytes: %w", size, fingerprint.ErrNotRecognised)
				}
				b = sec[size:]
			default:
				return nil, fmt.Errorf("op_msg section kind %d: %w", kind, fingerprint.ErrNotRecognised)
			}
		}
		return nil, fmt.Errorf("op_msg without a body: %w", fingerprint.ErrNotRecognised)
	case opReply:
		// int32 responseFlags, int64 cursorID, int32 startingFrom, int32 numberReturned, documents
		if len(b) < 20 {
			return nil, fmt.Errorf("op_reply of %d bytes: %w", len(b), fingerprint.ErrNotRecognised)
		}
		doc, _, err := document(b[20:])
		return doc, err
	}
	return nil, fmt.Errorf("opcode %d: %w", op, fingerprint.ErrNotRecognised)
}

// document splits one BSON document (int32 length counting itself) off b
// and validates it.
func document(b []byte) (bson.Raw, []byte, error) {
	if len(b) < 5 {
		return nil, nil, fmt.Errorf("bson document of %d bytes: %w", len(b), fingerprint.ErrNotRecognised)
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 5 || n > len(b) {
		return nil, nil, fmt.Errorf("bson length %d of %d bytes: %w", n, len(b), fingerprint.ErrNotRecognised)
	}
	doc := bson.Raw(b[:n])
	if err := doc.Validate(); err != nil {
		return nil, nil, fmt.Errorf("bson: %v: %w", err, fingerprint.ErrNotRecognised)
	}
	return doc, b[n:], nil
}
