package compactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/tenant"
	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/meridianhq/meridian/pkg/storage/bucket"
)

// TenantDeletionStatus answers GET /compactor/delete_tenant_status.
type TenantDeletionStatus struct {
	Tenant          string `json:"tenant"`
	BlocksRemaining int    `json:"blocks_remaining"`
	// DeletionFinished is true when no block of the tenant is left and the
	// compactor has seen that (or the tenant was never marked).
	DeletionFinished bool `json:"deletion_finished"`
}

// DeleteTenant marks the tenant for deletion: the next compactor runs
// delete every object of the tenant, then the mark. Marking a tenant
// already marked keeps the first mark.
func (c *Compactor) DeleteTenant(ctx context.Context, tenantID string) error {
	if !bucket.ValidTenant(tenantID) {
		return fmt.Errorf("invalid tenant ID %q", tenantID)
	}
	exists, err := c.bkt.Exists(ctx, bucket.TenantDeletionMarkName(tenantID))
	if err != nil {
		return fmt.Errorf("check tenant deletion mark of tenant %s: %w", tenantID, err)
	}
	if exists {
		return nil
	}
	if err := bucket.WriteTenantDeletionMark(ctx, c.bkt, tenantID, &bucket.TenantDeletionMark{DeletionTime: c.now().Unix()}); err != nil {
		return fmt.Errorf("mark tenant %s for deletion: %w", tenantID, err)
	}
	level.Info(c.logger).Log("msg", "tenant marked for deletion; its blocks are deleted by the next compactor run", "tenant", tenantID)
	return nil
}

// TenantDeletionStatus reports how far the deletion of the tenant is.
func (c *Compactor) TenantDeletionStatus(ctx context.Context, tenantID string) (TenantDeletionStatus, error) {
	st := TenantDeletionStatus{Tenant: tenantID}
	n, err := bucket.CountBlocks(ctx, c.bkt, tenantID)
	if err != nil {
		return st, err
	}
	st.BlocksRemaining = n
	mark, marked, err := bucket.ReadTenantDeletionMark(ctx, c.bkt, tenantID)
	switch {
	case err != nil:
		return st, fmt.Errorf("read tenant deletion mark of tenant %s: %w", tenantID, err)
	case marked:
		st.DeletionFinished = st.BlocksRemaining == 0 && mark.FinishedTime != 0
	default:
		st.DeletionFinished = st.BlocksRemaining == 0
	}
	return st, nil
}

// deleteTenantObjects deletes every object of a tenant marked for
// deletion: blocks (meta.json first) and anything else but the mark.
// Once nothing is left the mark records when; after TenantCleanupDelay
// more (during which blocks still shipped by ingesters keep being
// deleted) the mark goes too.
func (c *Compactor) deleteTenantObjects(ctx context.Context, tenantID string, mark *bucket.TenantDeletionMark, logger log.Logger) error {
	markName := bucket.TenantDeletionMarkName(tenantID)
	blocks := map[ulid.ULID]struct{}{}
	var others []string
	err := c.bkt.Iter(ctx, tenantID+objstore.DirDelim, func(name string) error {
		if name == markName {
			return nil
		}
		if id, ok := bucket.BlockOf(tenantID, name); ok {
			blocks[id] = struct{}{}
			return nil
		}
		others = append(others, name)
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("list objects of tenant marked for deletion: %w", err)
	}

	var errs []error
	for id := range blocks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := bucket.DeleteBlock(ctx, c.bkt, tenantID, id); err != nil {
			errs = append(errs, err)
			continue
		}
		c.blocksDeleted.Inc()
	}
	for _, name := range others {
		if err := bucket.DeleteObject(ctx, c.bkt, name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(blocks) > 0 {
		level.Info(logger).Log("msg", "deleted blocks of tenant marked for deletion", "blocks", len(blocks))
	}

	now := c.now()
	if mark.FinishedTime == 0 {
		mark.FinishedTime = now.Unix()
		if err := bucket.WriteTenantDeletionMark(ctx, c.bkt, tenantID, mark); err != nil {
			return fmt.Errorf("record finished deletion in tenant deletion mark: %w", err)
		}
		level.Info(logger).Log("msg", "all blocks of tenant marked for deletion are deleted", "cleanup_delay", c.cfg.TenantCleanupDelay)
	}
	if now.Sub(time.Unix(mark.FinishedTime, 0)) >= c.cfg.TenantCleanupDelay {
		if err := bucket.DeleteObject(ctx, c.bkt, markName); err != nil {
			return fmt.Errorf("remove tenant deletion mark: %w", err)
		}
		level.Info(logger).Log("msg", "tenant deletion finished; removed the tenant deletion mark")
	}
	return nil
}

// DeleteTenantHandler serves POST /compactor/delete_tenant: it marks the
// request's tenant for deletion and answers its deletion status.
func (c *Compactor) DeleteTenantHandler(w http.ResponseWriter, r *http.Request) {
	tenantID, err := tenant.TenantID(r.Context())
	if err != nil {
		http.Error(w, fmt.Sprintf("no tenant in the request: send the tenant ID in the X-Scope-OrgID header (%v)", err), http.StatusUnauthorized)
		return
	}
	if err := c.DeleteTenant(r.Context(), tenantID); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.writeStatus(w, r, tenantID)
}

// DeleteTenantStatusHandler serves GET /compactor/delete_tenant_status for
// the request's tenant.
func (c *Compactor) DeleteTenantStatusHandler(w http.ResponseWriter, r *http.Request) {
	tenantID, err := tenant.TenantID(r.Context())
	if err != nil {
		http.Error(w, fmt.Sprintf("no tenant in the request: send the tenant ID in the X-Scope-OrgID header (%v)", err), http.StatusUnauthorized)
		return
	}
	c.writeStatus(w, r, tenantID)
}

func (c *Compactor) writeStatus(w http.ResponseWriter, r *http.Request, tenantID string) {
	st, err := c.TenantDeletionStatus(r.Context(), tenantID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(st); err != nil {
		level.Warn(c.logger).Log("msg", "writing tenant deletion status", "tenant", tenantID, "err", err)
	}
}
