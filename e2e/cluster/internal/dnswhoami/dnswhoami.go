// Package dnswhoami is the test cluster's stand-in for CoreDNS (whose image must not run: the
// conformance suite's Corefile forwards to public resolvers, and no packet may leave the
// machine). It answers every DNS query over UDP itself, like CoreDNS's whoami plugin: the
// question echoed, and an A (or AAAA) record of the querier's address in the additional
// section. It never forwards. A query it cannot parse gets FORMERR when its header can be read.
package dnswhoami

import (
	"encoding/binary"
	"errors"
	"net"
)

const (
	typeA        = 1
	typeAAAA     = 28
	classIN      = 1
	rcodeFormErr = 1
)

// Answer builds the reply to query from client, or an error when query is not even a DNS
// header (no reply then).
func Answer(query []byte, client net.IP) ([]byte, error) {
	if len(query) < 12 {
		return nil, errors.New("shorter than a DNS header")
	}
	id := query[:2]
	flags := binary.BigEndian.Uint16(query[2:4])
	if flags&0x8000 != 0 {
		return nil, errors.New("a response, not a query")
	}
	qdcount := binary.BigEndian.Uint16(query[4:6])
	// The question: labels up to the root, then type and class.
	end := 12
	for qdcount == 1 && end < len(query) && query[end] != 0 {
		if query[end]&0xC0 != 0 {
			end = len(query) // no compression in a question
			break
		}
		end += 1 + int(query[end])
	}
	end += 5 // root label, type, class
	reply := make([]byte, 12, 64)
	copy(reply, id)
	// QR=1, opcode copied, AA=1, RD copied, RA=0.
	opcode := flags & 0x7800
	rd := flags & 0x0100
	if qdcount != 1 || end > len(query) {
		binary.BigEndian.PutUint16(reply[2:4], 0x8000|opcode|rd|rcodeFormErr)
		return reply, nil
	}
	binary.BigEndian.PutUint16(reply[2:4], 0x8000|opcode|0x0400|rd)
	binary.BigEndian.PutUint16(reply[4:6], 1)   // QDCOUNT
	binary.BigEndian.PutUint16(reply[10:12], 1) // ARCOUNT: whoami's record
	reply = append(reply, query[12:end]...)
	// The additional record: the question's name (a pointer to offset 12), the querier's address.
	rtype, addr := uint16(typeA), client.To4()
	if addr == nil {
		rtype, addr = typeAAAA, client.To16()
	}
	rr := make([]byte, 12)
	binary.BigEndian.PutUint16(rr[0:2], 0xC00C)
	binary.BigEndian.PutUint16(rr[2:4], rtype)
	binary.BigEndian.PutUint16(rr[4:6], classIN)
	binary.BigEndian.PutUint32(rr[6:10], 0) // TTL
	binary.BigEndian.PutUint16(rr[10:12], uint16(len(addr)))
	reply = append(reply, rr...)
	return append(reply, addr...), nil
}

// Serve answers the queries arriving on conn until it is closed.
func Serve(conn net.PacketConn) error {
	buf := make([]byte, 4096)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		udp, _ := from.(*net.UDPAddr)
		var ip net.IP
		if udp != nil {
			ip = udp.IP
		}
		if reply, err := Answer(buf[:n], ip); err == nil {
			_, _ = conn.WriteTo(reply, from)
		}
	}
}
