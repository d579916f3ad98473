package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// bucketBlock is a block in object storage read through its index header
// and ranged GETs.
type bucketBlock struct {
	tenant string
	meta   tsdb.BlockMeta
	header *indexHeader
	// index is the block's Prometheus index reader, shared by its queries
	// for what the index header holds (symbols, label names and values):
	// its byte source reads no object storage. Queries read postings
	// lists and series from indexFile through indexFor, with their own
	// context.
	index     *index.Reader
	indexFile *objectReader
	symbols   *symbolTable
	postings  *postingsTable
	chunks    []*objectReader // segment files in order: 000001, 000002, ...
	m         *metrics

	// refs counts the queries reading the block; the header mapping is
	// released once the block is evicted and no query reads it.
	mu      sync.Mutex
	refs    int
	evicted bool
}

// bytes is the memory the block keeps while loaded: its index header,
// symbol table and postings table.
func (b *bucketBlock) bytes() int64 {
	return b.header.bytes() + b.symbols.bytes() + b.postings.bytes()
}

func (b *bucketBlock) acquire() {
	b.mu.Lock()
	b.refs++
	b.mu.Unlock()
}

func (b *bucketBlock) release() {
	b.mu.Lock()
	b.refs--
	done := b.evicted && b.refs == 0
	b.mu.Unlock()
	if done {
		b.header.unmap()
	}
}

// evict releases the block now or when its last query ends.
func (b *bucketBlock) evict() {
	b.mu.Lock()
	b.evicted = true
	done := b.refs == 0
	b.mu.Unlock()
	if done {
		b.header.unmap()
	}
}

// openBucketBlock opens the block's index over hdr and lists its chunk
// segments.
func openBucketBlock(ctx context.Context, bkt objstore.BucketReader, cache Cache, m *metrics, tenant string, meta tsdb.BlockMeta, hdr *indexHeader) (*bucketBlock, error) {
	dir := blockKey{tenant: tenant, id: meta.ULID}.String()
	idxReader := newObjectReader(bkt, bucket.IndexName(tenant, meta.ULID), hdr.indexSize, kindIndex, "sg:"+dir+":index:", cache, m)
	bs := &indexByteSlice{header: hdr} // header sections only
	var ir *index.Reader
	var symbols *symbolTable
	var postings *postingsTable
	err := catchIndexRead(func() error {
		var err error
		ir, err = index.NewReader(bs, index.DecodePostingsRaw)
		if err != nil {
			return fmt.Errorf("%w: open index: %v", bucket.ErrCorrupted, err)
		}
		if ir.Version() != index.FormatV2 {
			return fmt.Errorf("%w: index format %d, only %d is supported", bucket.ErrCorrupted, ir.Version(), index.FormatV2)
		}
		toc, err := index.NewTOCFromByteSlice(bs)
		if err != nil {
			return fmt.Errorf("%w: read index TOC: %v", bucket.ErrCorrupted, err)
		}
		if symbols, err = newSymbolTable(ctx, bs, toc.Symbols, ir); err != nil {
			return err
		}
		postings, err = newPostingsTable(bs, toc.PostingsTable)
		return err
	})
	if err != nil {
		return nil, err
	}

	var segs []string
	chunksDir := bucket.ChunksPrefix(tenant, meta.ULID)
	if err := bkt.Iter(ctx, chunksDir, func(name string) error {
		segs = append(segs, name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list chunk segments: %w", err)
	}
	slices.Sort(segs)
	blk := &bucketBlock{tenant: tenant, meta: meta, header: hdr, index: ir, indexFile: idxReader, symbols: symbols, postings: postings, m: m}
	for i, name := range segs {
		want := fmt.Sprintf("%06d", i+1)
		if strings.TrimPrefix(name, chunksDir) != want {
			return nil, fmt.Errorf("%w: chunk segment %d is %s, expected %s", bucket.ErrCorrupted, i, name, chunksDir+want)
		}
		attrs, err := bkt.Attributes(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("size of chunk segment %s: %w", name, err)
		}
		blk.chunks = append(blk.chunks, newObjectReader(bkt, name, attrs.Size, kindChunks, "sg:"+dir+":chunks:"+want+":", cache, m))
	}
	return blk, nil
}

// indexBytesFor returns the index as one query reads it: its reads of
// object storage stop when ctx is cancelled.
func (b *bucketBlock) indexBytesFor(ctx context.Context) *indexByteSlice {
	return &indexByteSlice{ctx: ctx, header: b.header, r: b.indexFile}
}

// chunkReader reads chunks by reference: the segment number in the upper
// and the offset in the lower 32 bits of the ref (Prometheus' chunks format:
// length uvarint, encoding byte, data, CRC32C of encoding and data). One
// query's reader, not safe for concurrent use.
type chunkReader struct {
	b   *bucketBlock
	ctx context.Context
	// The page read last: a series' chunks lie next to each other, so
	// most chunks are read from the page of the one before.
	lastSeg  int
	lastPage int64
	last     []byte
}

// failed counts a failed chunk read and names the block in its error.
func (c *chunkReader) failed(err error) error {
	c.b.m.readErrors.Inc()
	if errors.Is(err, bucket.ErrCorrupted) {
		c.b.m.corruptedBlocks.Inc()
	}
	return fmt.Errorf("read chunk of block %s of tenant %s: %w", c.b.meta.ULID, c.b.tenant, err)
}

// raw returns the encoding and the bytes of the chunk at ref, checksum
// verified. The bytes are shared with the cache: never modify them.
func (c *chunkReader) raw(ref chunks.ChunkRef) (chunkenc.Encoding, []byte, error) {
	enc, data, err := c.read(ref)
	if err != nil {
		return 0, nil, c.failed(err)
	}
	return enc, data, nil
}

func (c *chunkReader) read(ref chunks.ChunkRef) (chunkenc.Encoding, []byte, error) {
	seq, off := chunks.BlockChunkRef(ref).Unpack()
	if seq >= len(c.b.chunks) {
		return 0, nil, fmt.Errorf("%w: chunk reference to segment %d, the block has %d", bucket.ErrCorrupted, seq+1, len(c.b.chunks))
	}
	seg := c.b.chunks[seq]
	start := int64(off)
	if start < chunks.SegmentHeaderSize || start >= seg.size {
		return 0, nil, fmt.Errorf("%w: chunk offset %d outside segment %s of %d bytes", bucket.ErrCorrupted, start, seg.name, seg.size)
	}
	head, err := c.bytes(seq, start, min(start+chunks.MaxChunkLengthFieldSize+chunks.ChunkEncodingSize, seg.size))
	if err != nil {
		return 0, nil, err
	}
	dataLen, n := binary.Uvarint(head)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad chunk length at offset %d of %s", bucket.ErrCorrupted, start, seg.name)
	}
	end := start + int64(n) + chunks.ChunkEncodingSize + int64(dataLen) + crc32.Size
	if end > seg.size {
		return 0, nil, fmt.Errorf("%w: chunk at offset %d of %s ends at %d, past the segment's %d bytes", bucket.ErrCorrupted, start, seg.name, end, seg.size)
	}
	b, err := c.bytes(seq, start+int64(n), end)
	if err != nil {
		return 0, nil, err
	}
	body, sum := b[:len(b)-crc32.Size], binary.BigEndian.Uint32(b[len(b)-crc32.Size:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, nil, fmt.Errorf("%w: checksum mismatch of chunk at offset %d of %s", bucket.ErrCorrupted, start, seg.name)
	}
	return chunkenc.Encoding(body[0]), body[1:len(body):len(body)], nil
}

// bytes returns bytes [start, end) of segment seq, from the last page read
// when they lie in it.
func (c *chunkReader) bytes(seq int, start, end int64) ([]byte, error) {
	seg := c.b.chunks[seq]
	p := start / pageSize
	if p != (end-1)/pageSize {
		return seg.read(c.ctx, start, end)
	}
	if c.last == nil || c.lastSeg != seq || c.lastPage != p {
		pg, err := seg.page(c.ctx, p)
		if err != nil {
			return nil, err
		}
		c.lastSeg, c.lastPage, c.last = seq, p, pg
	}
	lo, hi := start-p*pageSize, end-p*pageSize
	if hi > int64(len(c.last)) {
		return nil, fmt.Errorf("%w: page %d of %s is short", bucket.ErrCorrupted, p, seg.name)
	}
	return c.last[lo:hi:hi], nil
}

// blockKey names a block of a tenant.
type blockKey struct {
	tenant string
	id     ulid.ULID
}

func (k blockKey) String() string { return k.tenant + "/" + k.id.String() }
