// Command gitops-status prints how GitOps tools judge Kubernetes objects, computed with the
// tools' own Go code:
//
//   - kstatus: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, the generic rules Flux
//     health checks, Helm 4 --wait and cli-utils apply to any resource.
//   - Flux CEL health checks: the healthCheckExprs of a Flux Kustomization, evaluated by
//     github.com/fluxcd/pkg/runtime/cel (NewStatusReader, the status reader
//     kustomize-controller builds from spec.healthCheckExprs), through the same generic
//     status reader Flux's poller calls, so an evaluation error comes out as Flux reports
//     it: status Unknown with the error.
//
// Input: Kubernetes objects as JSON (one object, a List, or a stream of objects) or YAML
// (one or more documents), from the files named as arguments or from stdin ("-" or no
// argument). Output: one JSON line per object, in input order:
//
//	{"name":"...","namespace":"...","kind":"...",
//	 "kstatus":{"status":"Current","message":"..."},
//	 "flux":{"status":"InProgress","message":"...","error":"..."}}
//
// "flux" is present only with --flux-kustomization FILE, a file holding a
// kustomize.toolkit.fluxcd.io/v1 Kustomization whose spec.healthCheckExprs has an entry for
// codebuild.operator.dev/v1alpha1 CodeBuildRun. All its entries are loaded, as
// kustomize-controller loads them; an object of a kind none of them covers is judged as Flux
// judges it, by kstatus ("via":"kstatus"; "via":"healthCheckExprs" otherwise).
//
// Exit status: 0 when every object was judged (a judgement may be an error, reported in the
// line), 1 on unreadable input or an unusable Kustomization, 2 on bad usage.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// The kind the shipped Flux example must carry an entry for.
const (
	runAPIVersion = "codebuild.operator.dev/v1alpha1"
	runKind       = "CodeBuildRun"
)

// Judgement is one tool's verdict on one object.
type Judgement struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
	// Via says which code judged, for "flux": "healthCheckExprs" (the CEL status reader) or
	// "kstatus" (Flux's default for a kind no healthCheckExprs entry covers).
	Via string `json:"via,omitempty"`
}

// Line is the output for one object.
type Line struct {
	Name      string     `json:"name"`
	Namespace string     `json:"namespace,omitempty"`
	Kind      string     `json:"kind"`
	KStatus   Judgement  `json:"kstatus"`
	Flux      *Judgement `json:"flux,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gitops-status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kustomization := fs.String("flux-kustomization", "",
		"a file with a Flux Kustomization whose spec.healthCheckExprs covers "+runAPIVersion+" "+runKind)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gitops-status [--flux-kustomization FILE] [FILE|- ...]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}

	var flux *fluxChecker
	if *kustomization != "" {
		checker, err := loadFlux(*kustomization)
		if err != nil {
			fmt.Fprintf(stderr, "gitops-status: %s: %v\n", *kustomization, err)
			return 1
		}
		flux = checker
	}

	inputs := fs.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for _, input := range inputs {
		objects, err := readObjects(input, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "gitops-status: %s: %v\n", input, err)
			return 1
		}
		for _, u := range objects {
			if err := enc.Encode(judge(u, flux)); err != nil {
				fmt.Fprintf(stderr, "gitops-status: writing: %v\n", err)
				return 1
			}
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "gitops-status: writing: %v\n", err)
		return 1
	}
	return 0
}

// judge runs kstatus and, when configured, Flux's CEL status reader on one object.
func judge(u *unstructured.Unstructured, flux *fluxChecker) Line {
	line := Line{Name: u.GetName(), Namespace: u.GetNamespace(), Kind: u.GetKind()}
	if line.Name == "" {
		line.Name = u.GetGenerateName()
	}
	// Each tool gets its own copy of the object.
	if res, err := status.Compute(u.DeepCopy()); err != nil {
		line.KStatus = Judgement{Status: string(status.UnknownStatus), Error: err.Error()}
	} else {
		line.KStatus = Judgement{Status: string(res.Status), Message: res.Message}
	}
	if flux != nil {
		j := flux.judge(u.DeepCopy())
		line.Flux = &j
	}
	return line
}

// readObjects decodes every object of one input: JSON (an object, a stream of objects)
// or YAML documents; a List (kind ending in "List" with items) is expanded.
func readObjects(input string, stdin io.Reader) ([]*unstructured.Unstructured, error) {
	var r io.Reader = stdin
	if input != "-" {
		f, err := os.Open(input)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	dec := k8syaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	var objects []*unstructured.Unstructured
	for i := 0; ; i++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
		if len(raw) == 0 || string(raw) == "null" { // an empty YAML document
			continue
		}
		// The scheme client-go decodes API answers with: whole numbers become int64, as
		// kstatus and Flux see them in a cluster (plain encoding/json would give float64).
		obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, raw)
		if err != nil {
			return nil, fmt.Errorf("object %d: %w", i, err)
		}
		switch o := obj.(type) {
		case *unstructured.UnstructuredList:
			for j := range o.Items {
				objects = append(objects, &o.Items[j])
			}
		case *unstructured.Unstructured:
			if o.GetAPIVersion() == "" {
				return nil, fmt.Errorf("object %d (%s) has no apiVersion", i, o.GetKind())
			}
			objects = append(objects, o)
		default:
			return nil, fmt.Errorf("object %d: unexpected %T", i, obj)
		}
	}
	return objects, nil
}

// fluxChecker holds the status reader kustomize-controller would build from the
// Kustomization's healthCheckExprs.
type fluxChecker struct {
	readObject func(context.Context, *unstructured.Unstructured) (*Judgement, error)
}

func (f *fluxChecker) judge(u *unstructured.Unstructured) Judgement {
	j, err := f.readObject(context.Background(), u)
	if err != nil {
		return Judgement{Status: string(status.UnknownStatus), Error: err.Error()}
	}
	return *j
}

// fluxKustomization is the part of a kustomize.toolkit.fluxcd.io/v1 Kustomization that
// matters here; spec.healthCheckExprs has the API's own element type.
type fluxKustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	} `json:"spec"`
}

// loadFlux reads the one Kustomization of `path` that has a healthCheckExprs entry for
// CodeBuildRun and builds Flux's CEL status reader from all of its entries.
func loadFlux(path string) (*fluxChecker, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := k8syaml.NewYAMLOrJSONDecoder(bufio.NewReader(f), 4096)
	var found []fluxKustomization
	for i := 0; ; i++ {
		var k fluxKustomization
		err := dec.Decode(&k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if k.Kind != "Kustomization" || k.APIVersion != "kustomize.toolkit.fluxcd.io/v1" {
			continue
		}
		for _, hc := range k.Spec.HealthCheckExprs {
			if hc.APIVersion == runAPIVersion && hc.Kind == runKind {
				found = append(found, k)
				break
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no kustomize.toolkit.fluxcd.io/v1 Kustomization with a healthCheckExprs entry for %s %s", runAPIVersion, runKind)
	case 1:
	default:
		return nil, fmt.Errorf("%d Kustomizations have a healthCheckExprs entry for %s; keep one per file", len(found), runKind)
	}
	newReader, err := cel.NewStatusReader(found[0].Spec.HealthCheckExprs)
	if err != nil {
		return nil, fmt.Errorf("Kustomization %s: %w", found[0].Metadata.Name, err)
	}
	// The generic reader needs neither the RESTMapper nor a ClusterReader to judge an
	// object it is handed (they serve lookups by identifier and generated resources).
	reader := newReader(nil)
	return &fluxChecker{readObject: func(ctx context.Context, u *unstructured.Unstructured) (*Judgement, error) {
		if !reader.Supports(u.GroupVersionKind().GroupKind()) {
			// Flux judges kinds without an entry with kstatus: its fork of cli-utils, whose
			// status package is the same code as sigs.k8s.io/cli-utils'.
			res, err := fluxstatus.Compute(u)
			if err != nil {
				return &Judgement{Status: string(fluxstatus.UnknownStatus), Error: err.Error(), Via: "kstatus"}, nil
			}
			return &Judgement{Status: string(res.Status), Message: res.Message, Via: "kstatus"}, nil
		}
		rs, err := reader.ReadStatusForObject(ctx, nil, u)
		if err != nil {
			return nil, err
		}
		j := &Judgement{Status: string(rs.Status), Message: rs.Message, Via: "healthCheckExprs"}
		if rs.Error != nil {
			j.Error = rs.Error.Error()
		}
		return j, nil
	}}, nil
}
