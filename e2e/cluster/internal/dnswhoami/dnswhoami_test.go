package dnswhoami

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// query builds a standard query for name (type A, class IN).
func query(id uint16, name string) []byte {
	q := make([]byte, 12)
	binary.BigEndian.PutUint16(q[0:2], id)
	binary.BigEndian.PutUint16(q[2:4], 0x0100) // RD
	binary.BigEndian.PutUint16(q[4:6], 1)
	for _, label := range bytes.Split([]byte(name), []byte(".")) {
		if len(label) > 0 {
			q = append(q, byte(len(label)))
			q = append(q, label...)
		}
	}
	return append(q, 0, 0, 1, 0, 1)
}

func TestWhoamiOverUDP(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() { _ = Serve(conn) }()
	c, err := net.Dial("udp", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := query(0xBEEF, "foo.bar.com.")
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := buf[:n]
	if id := binary.BigEndian.Uint16(r[0:2]); id != 0xBEEF {
		t.Errorf("id %x", id)
	}
	flags := binary.BigEndian.Uint16(r[2:4])
	if flags&0x8000 == 0 || flags&0x000F != 0 || flags&0x0100 == 0 {
		t.Errorf("flags %016b: want a response, NOERROR, RD copied", flags)
	}
	if qd, ar := binary.BigEndian.Uint16(r[4:6]), binary.BigEndian.Uint16(r[10:12]); qd != 1 || ar != 1 {
		t.Errorf("qdcount %d arcount %d", qd, ar)
	}
	if !bytes.Equal(r[12:len(q)], q[12:]) {
		t.Errorf("question not echoed: %x", r[12:len(q)])
	}
	rr := r[len(q):]
	if len(rr) != 16 || binary.BigEndian.Uint16(rr[2:4]) != typeA || !net.IP(rr[12:16]).Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("whoami record %x: want A 127.0.0.1", rr)
	}
}

func TestMalformed(t *testing.T) {
	if _, err := Answer([]byte{1, 2, 3}, nil); err == nil {
		t.Error("a 3-byte packet answered")
	}
	q := query(7, "foo.bar.com.")
	r, err := Answer(q[:len(q)-3], net.IPv4(10, 0, 0, 1)) // question cut short
	if err != nil {
		t.Fatal(err)
	}
	if rcode := binary.BigEndian.Uint16(r[2:4]) & 0xF; rcode != rcodeFormErr {
		t.Errorf("rcode %d, want FORMERR", rcode)
	}
	resp := query(8, "a.")
	resp[2] |= 0x80
	if _, err := Answer(resp, nil); err == nil {
		t.Error("a response answered")
	}
	if r, _ := Answer(query(9, "x.example."), net.ParseIP("fd00::5")); binary.BigEndian.Uint16(r[len(r)-28+2:]) != typeAAAA {
		t.Errorf("IPv6 querier: want an AAAA record: %x", r)
	}
}
