package veil.query_test

import data.veil.query

# An analyst's ad hoc query that every default rule allows. The site and
# owner names are reserved (.invalid), so no operator's policy file applies
# to them when `veil policy test` runs these tests next to it.
base := {
	"role": "analyst",
	"token_id": "t1",
	"site": {
		"id": "s1",
		"domain": "shop.invalid",
		"owner_domain": "owner.invalid",
		"purposes": ["analytics", "personalization"],
		"reserved": {"event:props:plan": ["personalization"]},
	},
	"purpose": "analytics",
	"query": {
		"tier": "ad_hoc",
		"metrics": ["visitors"],
		"dimensions": ["visit:country"],
		"filters": [],
		"epsilon": 0.5,
		"days": 7,
	},
	"spent": {"role_day_epsilon": 0},
}

rules(d) := {x.rule | some x in d.deny}

test_analyst_ad_hoc_allowed_with_default_limits if {
	d := query.decision with input as base
	d.allow
	d.deny == []
	d.min_cohort == 10
	d.max_epsilon_per_query == 1
	d.max_epsilon_per_role_day == 3
}

test_viewer_released_allowed if {
	d := query.decision with input as object.union(base, {"role": "viewer", "purpose": "", "query": {"tier": "released", "epsilon": 0}})
	d.allow
	d.min_cohort == 10
}

test_viewer_ad_hoc_denied if {
	d := query.decision with input as object.union(base, {"role": "viewer"})
	not d.allow
	rules(d) == {"viewer_released_only"}
}

test_ad_hoc_needs_purpose if {
	d := query.decision with input as object.union(base, {"purpose": ""})
	rules(d) == {"purpose_required"}
}

test_released_needs_no_purpose if {
	d := query.decision with input as object.union(base, {"purpose": "", "query": {"tier": "released"}})
	d.allow
}

test_purpose_must_be_allowed_by_site if {
	d := query.decision with input as object.union(base, {"purpose": "model_training"})
	rules(d) == {"purpose_not_allowed"}
}

test_site_without_purposes_allows_analytics_only if {
	inp := object.union(base, {"site": {"purposes": []}})
	query.decision.allow with input as inp
	d := query.decision with input as object.union(inp, {"purpose": "personalization"})
	rules(d) == {"purpose_not_allowed"}
}

test_no_analytics_roles_denied if {
	every role in ["ingest", "privacy-officer"] {
		d := query.decision with input as object.union(base, {"role": role, "query": {"tier": "released"}})
		rules(d) == {"role_no_analytics"}
	}
}

test_unknown_role_denied if {
	d := query.decision with input as object.union(base, {"role": "root", "query": {"tier": "released"}})
	rules(d) == {"unknown_role"}
}

test_missing_fields_fail_closed if {
	d := query.decision with input as {}
	not d.allow
	rules(d) == {"unknown_role", "invalid_tier"}
}

test_epsilon_limits if {
	over := query.decision with input as object.union(base, {"query": {"epsilon": 1.5}})
	rules(over) == {"epsilon_exceeds_query_max"}
	at_max := query.decision with input as object.union(base, {"query": {"epsilon": 1}})
	at_max.allow
	zero := query.decision with input as object.union(base, {"query": {"epsilon": 0}})
	rules(zero) == {"epsilon_invalid"}
}

test_role_day_limit if {
	fits := query.decision with input as object.union(base, {"spent": {"role_day_epsilon": 2.5}})
	fits.allow
	over := query.decision with input as object.union(base, {"spent": {"role_day_epsilon": 2.6}})
	rules(over) == {"epsilon_exceeds_role_day_max"}
}

test_reserved_dimension_needs_its_purpose if {
	as_dim := query.decision with input as object.union(base, {"query": {"dimensions": ["event:props:plan"]}})
	rules(as_dim) == {"purpose_reserved_dimension"}
	as_filter := query.decision with input as object.union(base, {"query": {"filters": [{"op": "is", "dimension": "event:props:plan"}]}})
	rules(as_filter) == {"purpose_reserved_dimension"}
	as_dim.hidden_dimensions == ["event:props:plan"]
	ok := query.decision with input as object.union(base, {"purpose": "personalization", "query": {"dimensions": ["event:props:plan"]}})
	ok.allow
	ok.hidden_dimensions == []
}

test_reserved_prefix_pattern if {
	inp := object.union(base, {"site": {"reserved": {"event:props:*": ["model_training"]}}})
	d := query.decision with input as object.union(inp, {"query": {"dimensions": ["event:props:color"]}})
	rules(d) == {"purpose_reserved_dimension"}
	query.decision.allow with input as object.union(inp, {"query": {"dimensions": ["event:page"]}})
}

test_site_override_tightens if {
	site := {"shop.invalid": {"min_cohort": 50, "max_epsilon_per_query": 0.25}}
	d := query.decision with input as base with data.veil.site as site
	d.min_cohort == 50
	d.max_epsilon_per_query == 0.25
	rules(d) == {"epsilon_exceeds_query_max"}
	"site policy \"shop.invalid\" sets min_cohort 50" in d.reasons
	other := query.decision with input as object.union(base, {"site": {"domain": "blog.invalid"}}) with data.veil.site as site
	other.min_cohort == 10
}

test_plain_settings_cannot_loosen if {
	site := {"shop.invalid": {"min_cohort": 2, "max_epsilon_per_query": 5, "max_epsilon_per_role_day": 50}}
	d := query.decision with input as base with data.veil.site as site
	d.min_cohort == 10
	d.max_epsilon_per_query == 1
	d.max_epsilon_per_role_day == 3
}

test_explicit_loosen_is_reported if {
	site := {"shop.invalid": {"loosen": {"min_cohort": 5, "max_epsilon_per_query": 2}}}
	d := query.decision with input as object.union(base, {"query": {"epsilon": 1.5}}) with data.veil.site as site
	d.allow
	d.min_cohort == 5
	d.max_epsilon_per_query == 2
	"site policy \"shop.invalid\" loosens min_cohort to 5" in d.reasons
}

test_domain_tightening_beats_site_loosening if {
	d := query.decision with input as base
		with data.veil.site as {"shop.invalid": {"loosen": {"min_cohort": 5}}}
		with data.veil.domain as {"owner.invalid": {"min_cohort": 20}}
	d.min_cohort == 20
}

test_domain_purposes_intersect_site_purposes if {
	d := query.decision with input as object.union(base, {"purpose": "personalization"})
		with data.veil.domain as {"owner.invalid": {"purposes": ["analytics"]}}
	rules(d) == {"purpose_not_allowed"}
}

test_waiver_lifts_only_waivable_rules if {
	site := {"shop.invalid": {"loosen": {"waive": ["viewer_released_only"]}}}
	d := query.decision with input as object.union(base, {"role": "viewer"}) with data.veil.site as site
	d.allow
	"viewer_released_only waived by site policy \"shop.invalid\"" in d.reasons
	bad := query.decision with input as base with data.veil.site as {"shop.invalid": {"loosen": {"waive": ["role_no_analytics"]}}}
	rules(bad) == {"override_invalid"}
}

test_override_denials_are_added if {
	site := {"shop.invalid": {"deny": [{"rule": "long_ranges", "message": "at most 31 days"}, "no exports"]}}
	d := query.decision with input as base with data.veil.site as site
	rules(d) == {"long_ranges", "site_policy"}
}

test_hide_by_role if {
	site := {"shop.invalid": {"hide": {"viewer": ["visit:referrer"], "*": ["event:props:email_domain"]}}}
	viewer := query.decision with input as object.union(base, {"role": "viewer", "query": {"tier": "released", "dimensions": ["visit:referrer"]}}) with data.veil.site as site
	rules(viewer) == {"dimension_hidden"}
	viewer.hidden_dimensions == ["event:props:email_domain", "event:props:plan", "visit:referrer"]
	analyst := query.decision with input as object.union(base, {"query": {"dimensions": ["visit:referrer"]}}) with data.veil.site as site
	analyst.allow
}

test_malformed_override_denies if {
	every site in [
		{"shop.invalid": {"min_cohort": "50"}},
		{"shop.invalid": {"min_cohort": 2.5}},
		{"shop.invalid": {"max_epsilon_per_query": 0}},
		{"shop.invalid": {"purposes": "analytics"}},
		{"shop.invalid": {"deny": [42]}},
		{"shop.invalid": {"deny": [{"rule": "x", "message": 42}]}},
		{"shop.invalid": {"hide": ["visit:referrer"]}},
		{"shop.invalid": {"loosen": {"max_epsilon_per_role_day": -1}}},
	] {
		d := query.decision with input as base with data.veil.site as site
		not d.allow
		"override_invalid" in rules(d)
	}
}
