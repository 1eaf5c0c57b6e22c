package mpegts

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// PacketSize is the size of an MPEG-TS packet.
const PacketSize = 188

// SyncByte begins every packet.
const SyncByte = 0x47

// NoPID is a PID value that matches no packet.
const NoPID = 0xffff

// NullPID is the PID of null (stuffing) packets.
const NullPID = 0x1fff

// PID returns the PID of packet p.
func PID(p []byte) uint16 { return uint16(p[1]&0x1f)<<8 | uint16(p[2]) }

// Reader cuts a byte stream into transport packets.
type Reader struct {
	br    *bufio.Reader
	onErr func(error)
	err   func() error // the underlying reader's error, if it failed
}

// NewReader reads packets from br. onErr receives lost sync and stray
// bytes at the end; readErr, when set, tells an error of the underlying
// reader from the end of the input (bufio reports both as a short read).
func NewReader(br *bufio.Reader, onErr func(error), readErr func() error) *Reader {
	return &Reader{br: br, onErr: onErr, err: readErr}
}

// Step reads the next packet and gives it to v and a (video and audio); at
// the end of the input it flushes both and returns io.EOF. Errors of the
// input and of the depacketizers are returned as they are.
func (r *Reader) Step(v, a *Depacketizer) error {
	pkt, err := r.Next()
	if err == io.EOF {
		if err := v.Flush(); err != nil {
			return err
		}
		if err := a.Flush(); err != nil {
			return err
		}
		return io.EOF
	}
	if err != nil {
		return err
	}
	if err := v.Packet(pkt); err != nil {
		return err
	}
	return a.Packet(pkt)
}

// Next returns the next packet, which aliases the reader's buffer until
// the next call, or io.EOF at the end of the input. Bytes between packets
// (lost sync) are skipped up to the next sync byte.
func (r *Reader) Next() ([]byte, error) {
	for {
		pkt, err := r.br.Peek(PacketSize)
		if len(pkt) < PacketSize {
			// A short Peek carries the underlying reader's error: a body
			// that broke (io.ErrUnexpectedEOF from a cut chunked upload, a
			// reset, a deadline) is an error, not the end of the input.
			if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
				return nil, err
			}
			if r.err != nil {
				if err := r.err(); err != nil {
					return nil, err
				}
			}
			if len(pkt) > 0 {
				r.onErr(fmt.Errorf("%d stray bytes at the end", len(pkt)))
				r.br.Discard(len(pkt))
			}
			return nil, io.EOF
		}
		if pkt[0] != SyncByte {
			r.onErr(errors.New("lost sync"))
			n := 1
			for n < len(pkt) && pkt[n] != SyncByte {
				n++
			}
			r.br.Discard(n)
			continue
		}
		r.br.Discard(PacketSize)
		return pkt, nil
	}
}
