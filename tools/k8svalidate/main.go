// Command k8svalidate decodes Kubernetes manifests strictly with the
// Kubernetes Go types: an unknown field, a duplicate field or a value of the
// wrong type is an error, as is a kind the client-go scheme does not know.
// It then checks that the objects fit together (selectors match pod labels,
// referenced Services and ConfigMaps exist, Meridian containers have
// requests and a readiness probe). With -extract it writes the data of every
// ConfigMap to <dir>/<configmap>/<key> so the caller can check the files.
//
// It lives in its own Go module so Kubernetes dependencies stay out of the
// main module.
//
//	k8svalidate [-extract DIR] FILE...
//
// Each FILE is a YAML stream (documents separated by ---); JSON documents are
// YAML too. A document that is a v1 List is checked item by item.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

func main() {
	extract := flag.String("extract", "", "write every ConfigMap's data to `DIR`/<configmap>/<key>")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: k8svalidate [-extract DIR] FILE...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	failed := false
	for _, path := range flag.Args() {
		objs, errs := decodeFile(path)
		errs = append(errs, checkObjects(objs)...)
		if *extract != "" && len(errs) == 0 {
			if err := extractConfigMaps(objs, *extract); err != nil {
				errs = append(errs, err)
			}
		}
		for _, err := range errs {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		}
		if len(errs) > 0 {
			failed = true
			continue
		}
		fmt.Printf("%s: %d objects valid (%s)\n", path, len(objs), summarize(objs))
	}
	if failed {
		os.Exit(1)
	}
}

// object is one decoded manifest and where it came from.
type object struct {
	where string // "document 3" or "document 3, item 2"
	obj   runtime.Object
}

func (o object) name() string {
	m, err := metaOf(o.obj)
	kind := o.obj.GetObjectKind().GroupVersionKind().Kind
	if err != nil {
		return kind
	}
	return kind + "/" + m.GetName()
}

var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

func decodeFile(path string) ([]object, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{err}
	}
	var (
		objs []object
		errs []error
	)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return objs, append(errs, fmt.Errorf("document %d: %w", doc, err))
		}
		// "..." ends a YAML document (jsonnet -y writes one at the end).
		raw = bytes.TrimSuffix(bytes.TrimRight(raw, " \n"), []byte("\n..."))
		if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "..." || isOnlyComments(raw) {
			continue
		}
		where := fmt.Sprintf("document %d", doc)
		o, err := decodeStrict(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if list, ok := o.(*corev1.List); ok {
			for i, item := range list.Items {
				iw := fmt.Sprintf("%s, item %d", where, i+1)
				io, err := decodeStrict(item.Raw)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", iw, err))
					continue
				}
				objs = append(objs, object{iw, io})
			}
			continue
		}
		objs = append(objs, object{where, o})
	}
	if len(objs) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no Kubernetes objects in the file"))
	}
	return objs, errs
}

func isOnlyComments(raw []byte) bool {
	for _, line := range strings.Split(string(raw), "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// decodeStrict decodes one object; unknown and duplicate fields are errors.
func decodeStrict(raw []byte) (runtime.Object, error) {
	o, gvk, err := strictDecoder.Decode(raw, nil, nil)
	if err != nil {
		if gvk != nil && gvk.Kind != "" {
			return nil, fmt.Errorf("%s %s: %w", gvk.GroupVersion(), gvk.Kind, err)
		}
		return nil, err
	}
	// The decoder clears TypeMeta of typed objects; keep it for messages.
	o.GetObjectKind().SetGroupVersionKind(*gvk)
	return o, nil
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	type accessor interface{ GetObjectMeta() metav1.Object }
	if a, ok := o.(accessor); ok {
		return a.GetObjectMeta(), nil
	}
	return nil, fmt.Errorf("%T has no object metadata", o)
}

// checkObjects checks that the objects of one file refer to each other
// correctly.
func checkObjects(objs []object) []error {
	var errs []error
	seen := map[string]string{}
	services := map[string]*corev1.Service{}
	configMaps := map[string]*corev1.ConfigMap{}
	type podOwner struct {
		name     string
		selector *metav1.LabelSelector
		template *corev1.PodTemplateSpec
	}
	var owners []podOwner
	for _, o := range objs {
		m, err := metaOf(o.obj)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.where, err))
			continue
		}
		if m.GetName() == "" {
			errs = append(errs, fmt.Errorf("%s: %s has no metadata.name", o.where, o.name()))
		}
		key := o.name()
		if prev, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: %s is defined twice (also %s)", o.where, key, prev))
		}
		seen[key] = o.where
		switch v := o.obj.(type) {
		case *corev1.Service:
			services[v.Name] = v
		case *corev1.ConfigMap:
			configMaps[v.Name] = v
		case *appsv1.Deployment:
			owners = append(owners, podOwner{key, v.Spec.Selector, &v.Spec.Template})
		case *appsv1.StatefulSet:
			owners = append(owners, podOwner{key, v.Spec.Selector, &v.Spec.Template})
		}
	}
	var podLabels []labels.Set
	for _, ow := range owners {
		podLabels = append(podLabels, labels.Set(ow.template.Labels))
		sel, err := metav1.LabelSelectorAsSelector(ow.selector)
		switch {
		case ow.selector == nil:
			errs = append(errs, fmt.Errorf("%s: spec.selector is missing", ow.name))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: spec.selector: %w", ow.name, err))
		case sel.Empty():
			errs = append(errs, fmt.Errorf("%s: spec.selector is empty", ow.name))
		case !sel.Matches(labels.Set(ow.template.Labels)):
			errs = append(errs, fmt.Errorf("%s: spec.selector %s does not match the pod template labels %v", ow.name, sel, ow.template.Labels))
		}
		errs = append(errs, checkPod(ow.name, &ow.template.Spec, configMaps)...)
	}
	matchesSomePod := func(sel labels.Selector) bool {
		for _, l := range podLabels {
			if sel.Matches(l) {
				return true
			}
		}
		return false
	}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) > 0 && !matchesSomePod(labels.SelectorFromSet(v.Spec.Selector)) {
				errs = append(errs, fmt.Errorf("%s: selector %v matches no pod template", o.name(), v.Spec.Selector))
			}
		case *appsv1.StatefulSet:
			if v.Spec.ServiceName != "" && services[v.Spec.ServiceName] == nil {
				errs = append(errs, fmt.Errorf("%s: serviceName %q names no Service in the file", o.name(), v.Spec.ServiceName))
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || v.Spec.Selector == nil || sel.Empty() {
				errs = append(errs, fmt.Errorf("%s: needs a non-empty selector", o.name()))
			} else if !matchesSomePod(sel) {
				errs = append(errs, fmt.Errorf("%s: selector %s matches no pod template", o.name(), sel))
			}
		}
	}
	return errs
}

// checkPod checks references and the settings every Meridian container
// needs.
func checkPod(owner string, spec *corev1.PodSpec, configMaps map[string]*corev1.ConfigMap) []error {
	var errs []error
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil {
			cm := configMaps[v.ConfigMap.Name]
			if cm == nil {
				errs = append(errs, fmt.Errorf("%s: volume %q names ConfigMap %q, which is not in the file", owner, v.Name, v.ConfigMap.Name))
				continue
			}
			for _, item := range v.ConfigMap.Items {
				if _, ok := cm.Data[item.Key]; !ok {
					errs = append(errs, fmt.Errorf("%s: volume %q wants key %q of ConfigMap %q, which has no such key", owner, v.Name, item.Key, cm.Name))
				}
			}
		}
	}
	if len(spec.Containers) == 0 {
		errs = append(errs, fmt.Errorf("%s: no containers", owner))
	}
	for _, c := range spec.Containers {
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				// volumeClaimTemplates are checked by the API server; only
				// flag mounts of names that are nowhere.
				if !strings.HasPrefix(vm.Name, "data") {
					errs = append(errs, fmt.Errorf("%s: container %q mounts volume %q, which the pod does not define", owner, c.Name, vm.Name))
				}
			}
		}
		if c.Name != "meridian" {
			continue
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" {
			errs = append(errs, fmt.Errorf("%s: container meridian needs an HTTP readiness probe on /ready", owner))
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			errs = append(errs, fmt.Errorf("%s: container meridian needs CPU and memory requests", owner))
		}
		hasTarget := false
		for _, a := range c.Args {
			if strings.HasPrefix(a, "-target=") {
				hasTarget = true
			}
		}
		if !hasTarget {
			errs = append(errs, fmt.Errorf("%s: container meridian has no -target= argument", owner))
		}
	}
	return errs
}

// extractConfigMaps writes every ConfigMap's data to dir/<configmap>/<key>,
// and the arguments of every Meridian container to dir/args/<workload>.args,
// one per line, with paths under ConfigMap mounts rewritten to the extracted
// files and $(VAR) references to the downward API replaced by stand-ins
// (127.0.0.1 for the pod IP, <workload>-0 for the pod name), so the caller
// can run the binary with exactly those flags.
func extractConfigMaps(objs []object, dir string) error {
	for _, o := range objs {
		cm, ok := o.obj.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		d := filepath.Join(dir, cm.Name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for k, v := range cm.Data {
			if err := os.WriteFile(filepath.Join(d, k), []byte(v), 0o644); err != nil {
				return err
			}
		}
	}
	argsDir := filepath.Join(dir, "args")
	if err := os.MkdirAll(argsDir, 0o755); err != nil {
		return err
	}
	for _, o := range objs {
		var tmpl *corev1.PodTemplateSpec
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			tmpl = &v.Spec.Template
		case *appsv1.StatefulSet:
			tmpl = &v.Spec.Template
		default:
			continue
		}
		m, _ := metaOf(o.obj)
		cmOfVolume := map[string]string{}
		for _, v := range tmpl.Spec.Volumes {
			if v.ConfigMap != nil {
				cmOfVolume[v.Name] = v.ConfigMap.Name
			}
		}
		for _, c := range tmpl.Spec.Containers {
			if c.Name != "meridian" {
				continue
			}
			var pairs []string
			for _, vm := range c.VolumeMounts {
				if cmName, ok := cmOfVolume[vm.Name]; ok {
					pairs = append(pairs, strings.TrimSuffix(vm.MountPath, "/")+"/", filepath.Join(dir, cmName)+"/")
				}
			}
			for _, e := range c.Env {
				stand := ""
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					switch e.ValueFrom.FieldRef.FieldPath {
					case "status.podIP", "status.hostIP":
						stand = "127.0.0.1"
					case "metadata.name":
						stand = m.GetName() + "-0"
					case "metadata.namespace":
						stand = m.GetNamespace()
					}
				} else if e.ValueFrom == nil {
					stand = e.Value
				}
				pairs = append(pairs, "$("+e.Name+")", stand)
			}
			rep := strings.NewReplacer(pairs...)
			var b strings.Builder
			for _, a := range c.Args {
				b.WriteString(rep.Replace(a))
				b.WriteByte('\n')
			}
			kind := strings.ToLower(o.obj.GetObjectKind().GroupVersionKind().Kind)
			if err := os.WriteFile(filepath.Join(argsDir, kind+"-"+m.GetName()+".args"), []byte(b.String()), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func summarize(objs []object) string {
	count := map[string]int{}
	for _, o := range objs {
		count[o.obj.GetObjectKind().GroupVersionKind().Kind]++
	}
	kinds := make([]string, 0, len(count))
	for k := range count {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", count[k], k)
	}
	return strings.Join(parts, ", ")
}
