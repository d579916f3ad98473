package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
	"github.com/meridianhq/meridian/pkg/graphite/parser"
	"github.com/meridianhq/meridian/pkg/graphite/render"
)

// Render is /graphite/render: every target is parsed, evaluated over
// (from, until] and consolidated to maxDataPoints.
func (a *API) Render(w http.ResponseWriter, r *http.Request) { a.serve(w, r, a.render) }

func (a *API) render(w http.ResponseWriter, r *http.Request) error {
	if err := form(r); err != nil {
		return err
	}
	p, err := render.ParseParams(r.Form, a.now())
	if err != nil {
		return err
	}
	f, err := a.tenantLimits(r.Context())
	if err != nil {
		return err
	}
	// The answer written below is the last reader of the fetched values.
	defer f.release()
	// The fetcher decodes new series on every call: no copy needed.
	req := &functions.Request{From: p.From, Until: p.Until, MaxDataPoints: p.MaxDataPoints, Fetcher: f, MutableFetches: true}
	var rec *recordingFetcher
	if p.Format == render.FormatPart {
		f.seriesFrom, f.seriesUntil = p.SeriesFrom, p.SeriesUntil
		rec = &recordingFetcher{f: f}
		req.Fetcher, req.MaxDataPoints = rec, 0
	}
	var all []*functions.Series
	for _, target := range p.Targets {
		expr, err := parser.Parse(target)
		if err != nil {
			a.targets.WithLabelValues("invalid").Inc()
			return err
		}
		series, err := a.eval(r.Context(), req, expr)
		if err != nil {
			a.targets.WithLabelValues(outcome(err)).Inc()
			return err
		}
		a.targets.WithLabelValues("ok").Inc()
		all = append(all, series...)
	}
	a.renderSeries.Observe(float64(len(all)))
	if rec != nil {
		b, err := json.Marshal(render.NewPart(rec.fetched, all))
		if err != nil {
			return fmt.Errorf("encode the render answer: %w", err)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return nil
	}
	all = render.Consolidate(all, p.MaxDataPoints)
	w.Header().Set("Content-Type", render.ContentType(p.Format))
	render.Write(w, all, p.Format, p.NoNullPoints)
	return nil
}

// recordingFetcher notes the names of the series of every fetch, for
// render.FormatPart.
type recordingFetcher struct {
	f functions.Fetcher

	mu      sync.Mutex
	fetched [][]string
}

func (r *recordingFetcher) note(list []*functions.Series) {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = s.Name
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetched = append(r.fetched, names)
}

func (r *recordingFetcher) FetchPath(ctx context.Context, glob string, from, until int64) ([]*functions.Series, error) {
	list, err := r.f.FetchPath(ctx, glob, from, until)
	if err == nil {
		r.note(list)
	}
	return list, err
}

func (r *recordingFetcher) FetchTagged(ctx context.Context, exprs []string, from, until int64) ([]*functions.Series, error) {
	list, err := r.f.FetchTagged(ctx, exprs, from, until)
	if err == nil {
		r.note(list)
	}
	return list, err
}

func outcome(err error) string {
	var le *render.LimitError
	var ie *functions.InputError
	switch {
	case errors.As(err, &le):
		return "limit"
	case errors.As(err, &ie):
		return "invalid"
	}
	return "error"
}
