package storegateway

import (
	"context"
	"fmt"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// seriesByteAlign: a v2 index's series entries are 16-byte aligned and a
// series reference is its offset divided by 16 (Prometheus' index format).
const seriesByteAlign = 16

// symbolTable finds a v2 index's symbols by number in one step. Prometheus'
// index reader keeps the offset of every 32nd symbol and walks from there,
// up to 31 strings per lookup; every label of every series a query reads
// is such a lookup, which made symbol lookups a third of reading a series.
// The table keeps every symbol's offset, 4 bytes per symbol, over the
// symbol bytes the index header holds in memory.
type symbolTable struct {
	data    []byte   // the symbol table's entries (in the header mapping)
	offsets []uint32 // symbol number -> offset in data
	// names are the label names, looked up once: every series has them.
	names map[uint32]string
}

// newSymbolTable indexes the symbol table of the index in bs, whose TOC
// says it starts at off, and keeps ir's label names.
func newSymbolTable(ctx context.Context, bs index.ByteSlice, off uint64, ir *index.Reader) (*symbolTable, error) {
	d := encoding.NewDecbufAt(bs, int(off), castagnoli)
	count := d.Be32int()
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: read symbol table: %v", bucket.ErrCorrupted, d.Err())
	}
	st := &symbolTable{data: d.B, offsets: make([]uint32, count)}
	for i := range st.offsets {
		st.offsets[i] = uint32(len(st.data) - d.Len())
		d.UvarintBytes()
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: read symbol table: %v", bucket.ErrCorrupted, d.Err())
	}
	names, err := ir.LabelNames(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: read label names: %v", bucket.ErrCorrupted, err)
	}
	st.names = make(map[uint32]string, len(names))
	for _, n := range names {
		// Symbols are sorted: find the name's number by bisection.
		i := sort.Search(len(st.offsets), func(i int) bool {
			s, _ := st.at(uint32(i))
			return s >= n
		})
		if s, err := st.at(uint32(i)); err != nil || s != n {
			return nil, fmt.Errorf("%w: label name %q is not in the symbol table", bucket.ErrCorrupted, n)
		}
		st.names[uint32(i)] = n
	}
	return st, nil
}

func (st *symbolTable) lookup(_ context.Context, o uint32) (string, error) {
	if s, ok := st.names[o]; ok {
		return s, nil
	}
	return st.at(o)
}

// at decodes symbol number o.
func (st *symbolTable) at(o uint32) (string, error) {
	if int(o) >= len(st.offsets) {
		return "", fmt.Errorf("%w: unknown symbol %d, the table has %d", bucket.ErrCorrupted, o, len(st.offsets))
	}
	d := encoding.Decbuf{B: st.data[st.offsets[o]:]}
	s := d.UvarintStr()
	return s, d.Err()
}

func (st *symbolTable) bytes() int64 { return int64(len(st.offsets)) * 4 }

// series reads the labels and chunk metas of the series at ref in the
// index bs (of the block, as one query reads it) like index.Reader.Series, with symbols looked up in the block's symbol table.
func (b *bucketBlock) series(bs index.ByteSlice, ref storage.SeriesRef, builder *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	d := encoding.NewDecbufUvarintAt(bs, int(ref)*seriesByteAlign, castagnoli)
	if d.Err() != nil {
		return d.Err()
	}
	dec := index.Decoder{LookupSymbol: b.symbols.lookup}
	if err := dec.Series(d.Get(), builder, chks); err != nil {
		return fmt.Errorf("read series: %w", err)
	}
	return nil
}
