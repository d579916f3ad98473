package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"

	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// The index header is the part of a block's TSDB index the store-gateway
// keeps on local disk and in memory: the header bytes, the symbol table
// and the postings offset table with the TOC (docs/formats.md). Postings
// lists and series are read from object storage with ranged GETs.
const (
	indexHeaderFilename = "index-header"
	indexHeaderMagic    = "MRDNIH01"
	indexTOCLen         = 6*8 + 4 // six offsets and a CRC32, as in Prometheus' index format
	indexFileHeaderLen  = 5       // magic and version
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// headerSection is one byte range of the index object held in memory.
type headerSection struct {
	off  int64
	data []byte
}

// indexHeader is the in-memory form of the index header.
type indexHeader struct {
	indexSize int64
	sections  []headerSection // sorted by offset, not overlapping
	// mapped is an anonymous private mapping as long as the index, holding
	// the sections at their offsets; the rest is never touched, so costs no
	// memory. Prometheus' symbol table asks for Range(0, Len) and skips to
	// offsets inside the symbols section; mapped serves that.
	mapped []byte
}

// mapSections moves the sections into an anonymous mapping of the index's
// length, at their offsets.
func (h *indexHeader) mapSections() error {
	m, err := syscall.Mmap(-1, 0, int(h.indexSize), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("map index header of %d bytes: %w", h.indexSize, err)
	}
	for i, s := range h.sections {
		end := s.off + int64(len(s.data))
		if s.off < 0 || end > h.indexSize {
			_ = syscall.Munmap(m)
			return fmt.Errorf("%w: index header section %d to %d past the index's %d bytes", bucket.ErrCorrupted, s.off, end, h.indexSize)
		}
		copy(m[s.off:end], s.data)
		h.sections[i].data = m[s.off:end:end]
	}
	if err := syscall.Mprotect(m, syscall.PROT_READ); err != nil {
		_ = syscall.Munmap(m)
		return fmt.Errorf("protect index header mapping: %w", err)
	}
	h.mapped = m
	return nil
}

// unmap releases the mapping; no reader may use the header afterwards.
func (h *indexHeader) unmap() {
	if h.mapped != nil {
		_ = syscall.Munmap(h.mapped)
		h.mapped = nil
	}
}

func (h *indexHeader) bytes() int64 {
	var n int64
	for _, s := range h.sections {
		n += int64(len(s.data))
	}
	return n
}

// find returns the bytes [start, end) if one section holds them.
func (h *indexHeader) find(start, end int64) ([]byte, bool) {
	for _, s := range h.sections {
		if start >= s.off && end <= s.off+int64(len(s.data)) {
			return s.data[start-s.off : end-s.off : end-s.off], true
		}
	}
	return nil, false
}

// tocByteSlice serves the TOC at the end of the index from a buffer.
type tocByteSlice struct {
	size int64
	tail []byte // the last len(tail) bytes
}

func (t tocByteSlice) Len() int { return int(t.size) }
func (t tocByteSlice) Range(start, end int) []byte {
	base := int(t.size) - len(t.tail)
	return t.tail[start-base : end-base]
}

// buildIndexHeader reads the header sections of the index with ranged
// GETs (uncached: they are persisted instead).
func buildIndexHeader(ctx context.Context, r *objectReader) (*indexHeader, error) {
	if r.size < indexFileHeaderLen+indexTOCLen {
		return nil, fmt.Errorf("%w: index has %d bytes, too short for a TSDB index", bucket.ErrCorrupted, r.size)
	}
	tail, err := r.getRange(ctx, r.size-indexTOCLen, indexTOCLen)
	if err != nil {
		return nil, err
	}
	toc, err := index.NewTOCFromByteSlice(tocByteSlice{size: r.size, tail: tail})
	if err != nil {
		return nil, fmt.Errorf("%w: index TOC: %v", bucket.ErrCorrupted, err)
	}
	if toc.Symbols < indexFileHeaderLen || toc.Series < toc.Symbols || toc.PostingsTable < toc.Series || int64(toc.PostingsTable) > r.size-indexTOCLen {
		return nil, fmt.Errorf("%w: index TOC offsets out of order or past the end (symbols %d, series %d, postings table %d, size %d)", bucket.ErrCorrupted, toc.Symbols, toc.Series, toc.PostingsTable, r.size)
	}
	h := &indexHeader{indexSize: r.size}
	want := [][2]int64{
		{0, indexFileHeaderLen},
		{int64(toc.Symbols), int64(toc.Series)},
		{int64(toc.PostingsTable), r.size},
	}
	for _, w := range want {
		if w[1] <= w[0] {
			continue
		}
		var data []byte
		if w[0] == int64(toc.PostingsTable) && w[1]-w[0] == indexTOCLen {
			data = tail
		} else {
			data, err = r.getRange(ctx, w[0], w[1]-w[0])
			if err != nil {
				return nil, err
			}
		}
		h.sections = append(h.sections, headerSection{off: w[0], data: data})
	}
	r.m.bytesFetched.WithLabelValues(kindHeader).Add(0) // the bytes were counted under kindIndex
	return h, nil
}

// writeIndexHeader persists h atomically in dir:
//
//	magic "MRDNIH01" | index size u64 | section count u32 |
//	per section: offset u64, length u64 | section bytes ... | CRC32C u32
func writeIndexHeader(dir string, h *indexHeader) error {
	buf := make([]byte, 0, 8+8+4+len(h.sections)*16+int(h.bytes())+4)
	buf = append(buf, indexHeaderMagic...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(h.indexSize))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(h.sections)))
	for _, s := range h.sections {
		buf = binary.BigEndian.AppendUint64(buf, uint64(s.off))
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(s.data)))
	}
	for _, s := range h.sections {
		buf = append(buf, s.data...)
	}
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create index header directory: %w", err)
	}
	tmp := filepath.Join(dir, indexHeaderFilename+".tmp")
	if err := os.WriteFile(tmp, buf, 0o640); err != nil {
		return fmt.Errorf("write index header: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, indexHeaderFilename)); err != nil {
		return fmt.Errorf("move index header into place: %w", err)
	}
	return nil
}

var errBadIndexHeaderFile = errors.New("index header file is damaged")

// readIndexHeader loads an index header written by writeIndexHeader.
func readIndexHeader(dir string) (*indexHeader, error) {
	b, err := os.ReadFile(filepath.Join(dir, indexHeaderFilename))
	if err != nil {
		return nil, err
	}
	if len(b) < 8+8+4+4 || string(b[:8]) != indexHeaderMagic {
		return nil, errBadIndexHeaderFile
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadIndexHeaderFile)
	}
	h := &indexHeader{indexSize: int64(binary.BigEndian.Uint64(body[8:16]))}
	n := int(binary.BigEndian.Uint32(body[16:20]))
	pos := 20
	if n > 16 || len(body) < pos+n*16 {
		return nil, errBadIndexHeaderFile
	}
	data := pos + n*16
	for i := 0; i < n; i++ {
		off := int64(binary.BigEndian.Uint64(body[pos:]))
		l := int(binary.BigEndian.Uint64(body[pos+8:]))
		pos += 16
		if l < 0 || data+l > len(body) {
			return nil, errBadIndexHeaderFile
		}
		h.sections = append(h.sections, headerSection{off: off, data: body[data : data+l : data+l]})
		data += l
	}
	return h, nil
}

// fetchPanic carries a read error through Prometheus' index reader, whose
// ByteSlice cannot return one; catchIndexRead recovers it.
type fetchPanic struct{ err error }

// indexReadError is an object-storage read that failed inside Prometheus'
// index reader.
type indexReadError struct{ err error }

func (e *indexReadError) Error() string { return e.err.Error() }
func (e *indexReadError) Unwrap() error { return e.err }

// catchIndexRead runs f, which calls into Prometheus' index reader. That
// reader reads through index.ByteSlice, whose Range returns no error, so
// indexByteSlice raises a failed object-storage read as a fetchPanic; this
// is the one place that turns it back into an error, an *indexReadError.
// Every entry point into the index reader goes through it. Any other
// panic is a bug and is re-raised.
func catchIndexRead(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			fp, ok := p.(fetchPanic)
			if !ok {
				panic(p)
			}
			err = &indexReadError{err: fp.err}
		}
	}()
	return f()
}

// indexByteSlice is the index object as Prometheus' index reader sees it:
// header sections from memory, everything else through the page cache
// with the query's context. Without r (the block's shared reader) it holds
// the header sections only.
type indexByteSlice struct {
	ctx    context.Context
	header *indexHeader
	r      *objectReader
}

var errOutsideHeader = errors.New("the block's shared index reader reads the index header only")

func (b *indexByteSlice) Len() int { return int(b.header.indexSize) }

func (b *indexByteSlice) Range(start, end int) []byte {
	if start == 0 && end == b.Len() && b.header.mapped != nil {
		return b.header.mapped
	}
	if d, ok := b.header.find(int64(start), int64(end)); ok {
		return d
	}
	if b.r == nil {
		panic(fetchPanic{err: fmt.Errorf("read bytes %d to %d of the index: %w", start, end, errOutsideHeader)})
	}
	d, err := b.r.read(b.ctx, int64(start), int64(end))
	if err != nil {
		panic(fetchPanic{err: err})
	}
	return d
}
