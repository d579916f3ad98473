package alertmanager

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/template"
	"gopkg.in/yaml.v3"

	"github.com/meridianhq/meridian/pkg/limits"
)

// UserConfig is a tenant's configuration as the Cortex configuration API
// carries it (GET/POST /api/v1/alerts) and as it is stored.
type UserConfig struct {
	TemplateFiles      map[string]string `yaml:"template_files"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// ErrInvalidConfig marks a configuration that is refused: the client's
// fault, answered with 400.
var ErrInvalidConfig = errors.New("invalid Alertmanager configuration")

// Error IDs of refused uploads and requests (docs/errors.md).
const (
	errIDInvalidConfig    = "err-meridian-alertmanager-invalid-config"
	errIDConfigTooLarge   = "err-meridian-alertmanager-config-too-large"
	errIDTooManyTemplates = "err-meridian-alertmanager-too-many-templates"
	errIDTooManySilences  = "err-meridian-alertmanager-too-many-silences"
	errIDTooManyAlerts    = "err-meridian-alertmanager-too-many-alerts"
)

// configError is a refusal: an error ID and what to change.
type configError struct{ id, msg string }

func (e *configError) Error() string        { return e.id + ": " + e.msg }
func (e *configError) Is(target error) bool { return target == ErrInvalidConfig }

func invalid(id, format string, args ...any) error {
	return &configError{id: id, msg: fmt.Sprintf(format, args...)}
}

// errorID is the error ID of a refusal.
func errorID(err error) string {
	var ce *configError
	if errors.As(err, &ce) {
		return ce.id
	}
	return "unknown"
}

// maxUploadSize bounds an upload whatever the limits say.
const maxUploadSize = 16 << 20

// builtConfig is a configuration ready to run: the parsed Alertmanager
// config and the tenant's templates.
type builtConfig struct {
	raw  []byte // the stored form, to tell an unchanged config on the next poll
	conf *config.Config
	tmpl *template.Template
}

// parseUpload checks an upload (the YAML body of POST /api/v1/alerts)
// against the tenant's limits and everything that would make the tenant's
// Alertmanager fail to run it. Every error wraps ErrInvalidConfig and says
// what to change.
func parseUpload(body []byte, lim limits.Limits, externalURL *url.URL, logger *slog.Logger) (*builtConfig, error) {
	if max := lim.AlertmanagerMaxConfigSizeBytes; max > 0 && len(body) > max {
		return nil, invalid(errIDConfigTooLarge, "the configuration is %d bytes, more than the limit of %d bytes; make it smaller, or raise the per-tenant limit alertmanager_max_config_size_bytes (-alertmanager.max-config-size-bytes)", len(body), max)
	}
	uc, err := decodeUserConfig(body)
	if err != nil {
		return nil, invalid(errIDInvalidConfig, "the body is not YAML of the form {alertmanager_config: <string>, template_files: {<name>: <content>}}: %v", err)
	}
	if max := lim.AlertmanagerMaxTemplatesCount; max > 0 && len(uc.TemplateFiles) > max {
		return nil, invalid(errIDTooManyTemplates, "the configuration has %d template files, more than the limit of %d; merge some, or raise the per-tenant limit alertmanager_max_templates_count (-alertmanager.max-templates-count)", len(uc.TemplateFiles), max)
	}
	raw, err := yaml.Marshal(&uc)
	if err != nil {
		return nil, fmt.Errorf("encode the configuration: %w", err)
	}
	return buildConfig(uc, raw, externalURL, logger)
}

// decodeUserConfig decodes the YAML form; unknown fields are an error.
func decodeUserConfig(b []byte) (UserConfig, error) {
	var uc UserConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&uc); err != nil && !errors.Is(err, io.EOF) {
		return UserConfig{}, err
	}
	return uc, nil
}

// buildConfig parses and checks a configuration: the Alertmanager config, its
// templates and its receivers.
func buildConfig(uc UserConfig, raw []byte, externalURL *url.URL, logger *slog.Logger) (*builtConfig, error) {
	if strings.TrimSpace(uc.AlertmanagerConfig) == "" {
		return nil, invalid(errIDInvalidConfig, "alertmanager_config is empty: send the Alertmanager configuration (route, receivers, ...) as a string in alertmanager_config")
	}
	conf, err := config.Load(uc.AlertmanagerConfig)
	if err != nil {
		return nil, invalid(errIDInvalidConfig, "alertmanager_config does not load: %v", err)
	}
	if err := refuseLocalFiles(reflect.ValueOf(conf), "alertmanager_config", 0); err != nil {
		return nil, err
	}
	tmpl, err := parseTemplates(uc.TemplateFiles)
	if err != nil {
		return nil, err
	}
	tmpl.ExternalURL = externalURL
	for _, rcv := range conf.Receivers {
		if _, err := receiver.BuildReceiverIntegrations(rcv, tmpl, logger); err != nil {
			return nil, invalid(errIDInvalidConfig, "receiver %q: %v", rcv.Name, err)
		}
	}
	return &builtConfig{raw: raw, conf: conf, tmpl: tmpl}, nil
}

// parseTemplates parses every template file, in name order so that a later
// definition wins the same way on every replica. The templates field of
// alertmanager_config (file globs) is not read: the tenant's templates are
// all its template_files, never files of the server.
func parseTemplates(files map[string]string) (*template.Template, error) {
	tmpl, err := template.New()
	if err != nil {
		return nil, fmt.Errorf("create templates: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			return nil, invalid(errIDInvalidConfig, "template file name %q is not a plain file name: use a name without '/'", name)
		}
		if err := tmpl.Parse(strings.NewReader(files[name])); err != nil {
			return nil, invalid(errIDInvalidConfig, "template file %q does not parse: %v", name, err)
		}
	}
	return tmpl, nil
}

// refuseLocalFiles refuses settings that read a file of the server (every
// *_file field: password_file, ca_file, url_file, ...): a tenant must not
// make the Alertmanager read, and send away, files of the machine it runs on.
func refuseLocalFiles(v reflect.Value, path string, depth int) error {
	if depth > 32 {
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return refuseLocalFiles(v.Elem(), path, depth+1)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := refuseLocalFiles(v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if err := refuseLocalFiles(iter.Value(), fmt.Sprintf("%s.%v", path, iter.Key()), depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if strings.HasSuffix(name, "_file") && fv.Kind() == reflect.String && fv.String() != "" {
				return invalid(errIDInvalidConfig, "%s.%s reads a file of the server, which a tenant's configuration may not do: put the value itself in the configuration instead (e.g. password instead of password_file)", path, name)
			}
			if err := refuseLocalFiles(fv, path+"."+name, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// defaultFallbackConfig routes every alert of a tenant without a
// configuration to a receiver that drops it.
const defaultFallbackConfig = `route:
  receiver: empty-receiver
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: empty-receiver
`
