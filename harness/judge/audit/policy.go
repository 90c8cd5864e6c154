package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Policy is one IoT policy version to judge.
type Policy struct {
	Name      string
	VersionID string
	Document  PolicyDocument
	Path      string
}

// PolicyDocument is the IAM-style JSON of an IoT policy.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one policy statement; Action and Resource may be a string
// or a list.
type Statement struct {
	Effect      string                    `json:"Effect"`
	Action      stringList                `json:"Action,omitempty"`
	NotAction   stringList                `json:"NotAction,omitempty"`
	Resource    stringList                `json:"Resource,omitempty"`
	NotResource stringList                `json:"NotResource,omitempty"`
	Condition   map[string]map[string]any `json:"Condition,omitempty"`
}

type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", b)
	}
	*s = many
	return nil
}

// LoadPolicy reads a policy document, or the output of `aws iot
// get-policy` / `get-policy-version` (policyDocument as a JSON string).
// Without a name in the file the policy is named after the file, version 1.
func LoadPolicy(p string) (*Policy, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var wrap struct {
		PolicyName       string `json:"policyName"`
		PolicyDocument   string `json:"policyDocument"`
		DefaultVersionID string `json:"defaultVersionId"`
		PolicyVersionID  string `json:"policyVersionId"`
	}
	pol := &Policy{Path: p, Name: strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)), VersionID: "1"}
	doc := b
	if err := json.Unmarshal(b, &wrap); err != nil {
		return nil, fmt.Errorf("audit: policy %s: %v", p, err)
	}
	if wrap.PolicyDocument != "" {
		doc = []byte(wrap.PolicyDocument)
		if wrap.PolicyName != "" {
			pol.Name = wrap.PolicyName
		}
		for _, v := range []string{wrap.PolicyVersionID, wrap.DefaultVersionID} {
			if v != "" {
				pol.VersionID = v
				break
			}
		}
	}
	if err := json.Unmarshal(doc, &pol.Document); err != nil {
		return nil, fmt.Errorf("audit: policy %s: %v", p, err)
	}
	if len(pol.Document.Statement) == 0 {
		return nil, fmt.Errorf("audit: policy %s: no Statement", p)
	}
	for i, st := range pol.Document.Statement {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return nil, fmt.Errorf("audit: policy %s: Statement[%d].Effect %q should be Allow or Deny", p, i, st.Effect)
		}
	}
	return pol, nil
}

// dataPlane are the actions the check judges (note §5.3 step 2).
var dataPlane = []string{"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive",
	"iot:DeleteThingShadow", "iot:GetThingShadow", "iot:UpdateThingShadow",
	"iot:DescribeJobExecution", "iot:GetPendingJobExecutions", "iot:StartNextPendingJobExecution", "iot:UpdateJobExecution"}

// Judge returns the IOT_POLICY_OVERLY_PERMISSIVE_CHECK finding of the
// policy, if it grants a data-plane action on resources beyond one
// device's own (note §5.3).
func (p *Policy) Judge() (Finding, bool) {
	var broad []string
	seen := map[string]bool{}
	for _, st := range p.Document.Statement {
		if st.Effect != "Allow" { // Deny is not covered by the docs: ignored (still flagged)
			continue
		}
		actions := expand(st.Action)
		if len(st.NotAction) > 0 { // Allow with NotAction grants everything else
			actions = nil
			for _, a := range dataPlane {
				if len(expand(stringList{a})) > 0 && len(matchAny(st.NotAction, a)) == 0 {
					actions = append(actions, a)
				}
			}
		}
		attached := isAttachedCondition(st.Condition)
		for _, a := range actions {
			if seen[a] || a == "iot:Receive" { // Receive is never broad on its own
				continue
			}
			wide := len(st.NotResource) > 0
			for _, r := range st.Resource {
				wide = wide || broadResource(a, r, attached)
			}
			if wide {
				seen[a] = true
				broad = append(broad, a)
			}
		}
	}
	if len(broad) == 0 {
		return Finding{}, false
	}
	return Finding{CheckName: PolicyPermissive,
		NonCompliantResource: Resource{ResourceType: "IOT_POLICY", ResourceIdentifier: map[string]any{
			"policyVersionIdentifier": map[string]string{"policyName": p.Name, "policyVersionId": p.VersionID}}},
		ReasonForNonCompliance:     fmt.Sprintf("Policy allows broad access to IoT data plane actions: [%s].", strings.Join(broad, ", ")),
		ReasonForNonComplianceCode: "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS"}, true
}

// expand matches action patterns (wildcards, any case) against the
// data-plane set.
func expand(patterns stringList) []string {
	var out []string
	for _, a := range dataPlane {
		if len(matchAny(patterns, a)) > 0 {
			out = append(out, a)
		}
	}
	return out
}

func matchAny(patterns stringList, action string) []string {
	var out []string
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(action)); ok {
			out = append(out, p)
		}
	}
	return out
}

func isAttachedCondition(cond map[string]map[string]any) bool {
	for op, kv := range cond {
		if !strings.EqualFold(op, "Bool") {
			continue
		}
		for k, v := range kv {
			if strings.EqualFold(k, "iot:Connection.Thing.IsAttached") && strings.EqualFold(strings.Trim(fmt.Sprint(v), "[]"), "true") {
				return true
			}
		}
	}
	return false
}

// broadResource applies note §5.3 steps 3 to 5 to one (action, resource).
func broadResource(action, res string, attached bool) bool {
	if res == "*" {
		return true
	}
	rest := res
	if strings.HasPrefix(res, "arn:") {
		parts := strings.SplitN(res, ":", 6)
		if len(parts) < 6 {
			return true
		}
		rest = parts[5]
	}
	kind, p, _ := strings.Cut(rest, "/")
	want := map[string]string{"iot:Connect": "client", "iot:Publish": "topic", "iot:Subscribe": "topicfilter"}[action]
	if want == "" {
		want = "thing"
	}
	if strings.ContainsAny(kind, "*?") {
		return true // "arn:aws:iot:...:*" covers every resource type
	}
	if kind != want {
		return false // another resource type: not a grant for this action
	}
	wild := func(s string) bool { return s == "" || strings.ContainsAny(s, "*?+#") }
	switch kind {
	case "client":
		if p == "${iot:ClientId}" {
			return !attached
		}
		return wild(p)
	case "thing":
		return wild(p)
	}
	levels := strings.Split(p, "/")
	if levels[0] == "$aws" {
		if len(levels) < 2 || wild(levels[1]) {
			return true
		}
		if levels[1] == "things" {
			return len(levels) < 3 || wild(levels[2])
		}
		return false
	}
	// Application topics: only a wildcard spanning the whole topic space is
	// broad (note §5.3 step 5, [unknown] in AWS's docs).
	return levels[0] == "*" || levels[0] == "#" || levels[0] == "+" || levels[0] == ""
}
