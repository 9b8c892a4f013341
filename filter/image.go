package filter

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

func (p *Policy) decideImage(call *Call) (*Decision, error) {
	op := call.Op
	switch op {
	case OpImageList:
		if !p.imageList {
			return refuse(op, RuleDefaultDeny, "the policy does not allow listing images"), nil
		}
		d := allow(op, "images")
		d.Path = prefix(call) + "/images/json"
		d.Query = encodeQuery(call.Query)
		d.narrow = func(body []byte) ([]byte, error) {
			return narrowArray(body, func(elem []byte) ([]byte, error) {
				var tags []string
				err := decodeField(elem, "RepoTags", &tags)
				for _, t := range tags {
					if n, nerr := normalizeImage(t); nerr == nil && p.inspect[n] {
						return p.narrowImage(elem)
					}
				}
				return nil, err
			})
		}
		return d, nil
	case OpImageInspect:
		ref := call.Params[0]
		norm, err := normalizeImage(ref)
		if err != nil || !p.inspect[norm] {
			return refuse(op, RuleDefaultDeny, "image %q is not one the policy lets clients inspect",
				clip(ref)), nil
		}
		named, _ := reference.ParseNormalizedNamed(norm)
		d := allow(op, "images")
		d.Path = prefix(call) + "/images/" + reference.FamiliarString(named) + "/json"
		d.Query = encodeQuery(call.Query)
		d.narrow = p.narrowImage
		return d, nil
	}
	return p.decidePull(call)
}

// narrowImage removes from an image's inspect answer or list entry what
// names other images or containers: tags and digests of repositories the
// policy does not pin (another name for the same image), the parent image,
// and the container that built or committed it, with its configuration
// and, in the image's own configuration, its hostname and image. The
// answer is edited member by member in the daemon's order.
func (p *Policy) narrowImage(body []byte) ([]byte, error) {
	blank := replaceWith(`""`)
	out, err := editMembers(body, memberEdits{
		"RepoTags": keepStrings(func(t string) bool {
			n, err := normalizeImage(t)
			return err == nil && p.inspect[n]
		}),
		"RepoDigests":     keepStrings(p.pinnedRepository),
		"Parent":          blank,
		"ParentId":        blank,
		"Container":       blank,
		"ContainerConfig": replaceWith("null"),
		"Config":          editEach(memberEdits{"Image": blank, "Hostname": blank}),
	})
	if err != nil {
		return nil, fmt.Errorf("narrowing image answer: %w", err)
	}
	return out, nil
}

// keepStrings edits a list of strings down to those keep accepts.
func keepStrings(keep func(string) bool) func([]byte) ([]byte, error) {
	return func(v []byte) ([]byte, error) {
		var list []string
		if err := json.Unmarshal(v, &list); err != nil || list == nil {
			return v, err
		}
		return marshalPlain(slices.DeleteFunc(list, func(s string) bool { return !keep(s) })), nil
	}
}

// pinnedRepository reports whether ref names a repository of an image the
// policy lets clients inspect.
func (p *Policy) pinnedRepository(ref string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	for pinned := range p.inspect {
		if pn, err := reference.ParseNormalizedNamed(pinned); err == nil && pn.Name() == named.Name() {
			return true
		}
	}
	return false
}

// decidePull allows pulling a pinned reference. The reference must name a
// tag or digest (a bare name pulls every tag), once: an inline tag and a
// tag parameter together are refused.
func (p *Policy) decidePull(call *Call) (*Decision, error) {
	op, q := call.Op, call.Query
	from, tag := q["fromImage"], q["tag"]
	named, err := reference.ParseNormalizedNamed(from)
	if err != nil {
		return refuse(op, RuleDefaultDeny, "fromImage %q is not an image reference", clip(from)), nil
	}
	_, inlineTag := named.(reference.Tagged)
	_, inlineDigest := named.(reference.Digested)
	if (inlineTag || inlineDigest) && tag != "" {
		return refuse(op, RuleDefaultDeny, "fromImage %q already names a tag or digest; tag %q "+
			"would override it", clip(from), clip(tag)), nil
	}
	full := from
	if tag != "" {
		sep := ":"
		if strings.Contains(tag, ":") {
			sep = "@"
		}
		full = from + sep + tag
		if named, err = reference.ParseNormalizedNamed(full); err != nil {
			return refuse(op, RuleDefaultDeny, "tag %q is not a tag or digest", clip(tag)), nil
		}
	} else if !inlineTag && !inlineDigest {
		return refuse(op, RuleDefaultDeny, "pulling %q without a tag would pull every tag", clip(from)), nil
	}
	if !p.pull[named.String()] {
		return refuse(op, RuleDefaultDeny, "image %q is not one the policy lets clients pull",
			clip(full)), nil
	}
	d := allow(op, "images")
	d.Path = prefix(call) + "/images/create"
	fq := map[string]string{"fromImage": reference.FamiliarName(named)}
	if t, ok := named.(reference.Tagged); ok {
		fq["tag"] = t.Tag()
	}
	if dg, ok := named.(reference.Digested); ok {
		fq["tag"] = dg.Digest().String()
	}
	d.Query = encodeQuery(fq)
	return d, nil
}
