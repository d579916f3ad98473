package storegateway

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"

	"github.com/meridianhq/meridian/pkg/meridianpb"
	"github.com/meridianhq/meridian/pkg/util/matchers"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// seriesBatch is how many series go in one streamed message.
const seriesBatch = 128

// releaseAll ends the queries' use of blocks.
func releaseAll(blocks []*bucketBlock) {
	for _, b := range blocks {
		b.release()
	}
}

// openBlocks returns the loaded blocks of ids, and the IDs of those it
// found; the caller releases them with releaseAll. A block without a meta.json is skipped (the caller asks another
// store-gateway or reports it missing); any other problem is an error
// naming the block.
func (s *Store) openBlocks(ctx context.Context, tenant string, ids []string) ([]*bucketBlock, []string, error) {
	var blocks []*bucketBlock
	var found []string
	for _, raw := range ids {
		id, err := ulid.ParseStrict(raw)
		if err != nil {
			releaseAll(blocks)
			return nil, nil, fmt.Errorf("block ID %q is not a ULID", raw)
		}
		blk, err := s.block(ctx, tenant, id)
		if errors.Is(err, bucket.ErrBlockNotFound) {
			continue
		}
		if err != nil {
			releaseAll(blocks)
			return nil, nil, fmt.Errorf("block %s of tenant %s cannot be read: %w", id, tenant, err)
		}
		blocks = append(blocks, blk)
		found = append(found, raw)
	}
	return blocks, found, nil
}

// Series sends the matching series of the requested blocks to send, in
// batches, sorted by labels and merged across blocks, then a last message
// listing the blocks queried.
func (s *Store) Series(ctx context.Context, tenant string, req *meridianpb.StoreSeriesRequest, send func(*meridianpb.StoreSeriesResponse) error) error {
	ms, err := matchers.FromProto(req.Matchers)
	if err != nil {
		return err
	}
	blocks, found, err := s.openBlocks(ctx, tenant, req.BlockIds)
	if err != nil {
		return err
	}
	defer releaseAll(blocks)
	if len(blocks) > 0 {
		if err := s.sendSeries(ctx, blocks, ms, req, send); err != nil {
			return err
		}
	}
	return send(&meridianpb.StoreSeriesResponse{QueriedBlocks: found})
}

// LabelNames returns the label names of the matching series of the blocks.
func (s *Store) LabelNames(ctx context.Context, tenant string, req *meridianpb.StoreLabelNamesRequest) (*meridianpb.StoreLabelNamesResponse, error) {
	ms, err := matchers.FromProto(req.Matchers)
	if err != nil {
		return nil, err
	}
	blocks, found, err := s.openBlocks(ctx, tenant, req.BlockIds)
	if err != nil {
		return nil, err
	}
	defer releaseAll(blocks)
	var all []string
	for _, blk := range blocks {
		names, err := blockStrings(blk, func() ([]string, error) {
			return blk.indexFor(ctx).LabelNames(ctx, ms...)
		})
		if err != nil {
			return nil, err
		}
		all = append(all, names...)
	}
	return &meridianpb.StoreLabelNamesResponse{Names: sortedUnique(all), QueriedBlocks: found}, nil
}

// LabelValues returns the values of a label in the matching series of the blocks.
func (s *Store) LabelValues(ctx context.Context, tenant string, req *meridianpb.StoreLabelValuesRequest) (*meridianpb.StoreLabelValuesResponse, error) {
	ms, err := matchers.FromProto(req.Matchers)
	if err != nil {
		return nil, err
	}
	blocks, found, err := s.openBlocks(ctx, tenant, req.BlockIds)
	if err != nil {
		return nil, err
	}
	defer releaseAll(blocks)
	var all []string
	for _, blk := range blocks {
		vals, err := blockStrings(blk, func() ([]string, error) {
			return blk.indexFor(ctx).SortedLabelValues(ctx, req.Name, nil, ms...)
		})
		if err != nil {
			return nil, err
		}
		all = append(all, vals...)
	}
	return &meridianpb.StoreLabelValuesResponse{Values: sortedUnique(all), QueriedBlocks: found}, nil
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// blockStrings runs f, turning a failed index read into an error naming
// the block.
func blockStrings(blk *bucketBlock, f func() ([]string, error)) ([]string, error) {
	var out []string
	err := catchIndexRead(func() error {
		var err error
		out, err = f()
		return err
	})
	var ire *indexReadError
	if errors.As(err, &ire) {
		return nil, blk.readError(err)
	}
	if err != nil {
		return nil, fmt.Errorf("read block %s of tenant %s: %w", blk.meta.ULID, blk.tenant, err)
	}
	return out, nil
}

// readError names the block in an error of its index. A failed
// object-storage read (an *indexReadError) is counted as such.
func (b *bucketBlock) readError(err error) error {
	var ire *indexReadError
	if errors.As(err, &ire) {
		b.m.readErrors.Inc()
		if errors.Is(err, bucket.ErrCorrupted) {
			b.m.corruptedBlocks.Inc()
		}
		err = ire.err
	}
	return fmt.Errorf("read index of block %s of tenant %s: %w", b.meta.ULID, b.tenant, err)
}
