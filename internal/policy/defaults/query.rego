# Veil's built-in query policy, evaluated for every Stats API query as
# data.veil.query.decision. POLICY.md documents the input and the decision.
#
# Site and domain policy files never change this package. They set values in
# data.veil.site["<site domain>"] and data.veil.domain["<owner domain>"],
# which this policy reads: plain settings only tighten the built-in limits,
# and loosening must be written under `loosen`, which shows in the reasons.
package veil.query

# Built-in limits. ε is per visitor-day unit: per query, and per role, site
# and day; the ledger still enforces the site's own budget.
defaults := {
	"min_cohort": 10,
	"max_epsilon_per_query": 1,
	"max_epsilon_per_role_day": 3,
	# Purposes a site allows when its configuration names none.
	"purposes": ["analytics"],
}

query_roles := {"admin", "analyst", "viewer"}

# These roles act on data (ingest, data subject requests), not on analytics;
# keeping them out of queries limits what a leaked ingest token reveals.
no_analytics_roles := {"ingest", "privacy-officer"}

# Built-in denials a site or domain policy may waive under loosen.waive. The
# others guard the privacy model itself and cannot be waived.
waivable := {
	"viewer_released_only",
	"purpose_required",
	"purpose_not_allowed",
	"purpose_reserved_dimension",
}

decision := {
	"allow": allow,
	"deny": sorted_denials,
	"min_cohort": min_cohort,
	"max_epsilon_per_query": max_epsilon_per_query,
	"max_epsilon_per_role_day": max_epsilon_per_role_day,
	"reasons": sort(reasons),
	"hidden_dimensions": sort(hidden_dimensions),
}

allow := count(deny) == 0

deny contains d if {
	some d in builtin_denials
	not d.rule in waived_rules
}

deny contains d if some d in override_denials

# Ordered by rule name, so the first denial (the one metrics count) is stable.
sorted_denials := [deny_rule(k[0], k[1]) | some k in sort([[d.rule, d.message] | some d in deny])]

# ---- input -----------------------------------------------------------------

# object.get keeps these defined when a caller omits a field, so a missing
# role or tier denies instead of leaving a rule undefined.
role := object.get(input, "role", "")

purpose := object.get(input, "purpose", "")

tier := object.get(input, ["query", "tier"], "")

epsilon := object.get(input, ["query", "epsilon"], 0)

epsilon_valid if valid_epsilon(epsilon)

spent := object.get(input, ["spent", "role_day_epsilon"], 0)

site_name := object.get(input, ["site", "domain"], "")

domain_name := object.get(input, ["site", "owner_domain"], "")

used_dimensions contains d if some d in object.get(input, ["query", "dimensions"], [])

used_dimensions contains f.dimension if some f in object.get(input, ["query", "filters"], [])

# ---- settings from policy files --------------------------------------------

# The site's and the owner domain's policy documents, where they exist. Only
# these two are read, so other sites' rules are never evaluated.
scopes contains {"kind": "site", "name": site_name, "policy": p} if p := data.veil.site[site_name]

scopes contains {"kind": "domain", "name": domain_name, "policy": p} if p := data.veil.domain[domain_name]

setting_fields := {"min_cohort", "max_epsilon_per_query", "max_epsilon_per_role_day", "purposes", "reserved", "hide", "deny"}

loosen_fields := {"min_cohort", "max_epsilon_per_query", "max_epsilon_per_role_day", "waive"}

# Settings per field, as {"kind", "name", "value"}: plain ones, and those
# under `loosen`. Other rules in a policy file (helpers) are not settings.
tightened[field] contains {"kind": s.kind, "name": s.name, "value": v} if {
	some s in scopes
	some field, v in s.policy
	field in setting_fields
}

loosened[field] contains {"kind": s.kind, "name": s.name, "value": v} if {
	some s in scopes
	some field, v in s.policy.loosen
	field in loosen_fields
}

# Names a setting's source in messages and reasons: site policy "shop.example".
label(x) := sprintf("%s policy %q", [x.kind, x.name])

valid_setting("min_cohort", v) if {
	is_number(v)
	v >= 1
	v == round(v)
}

valid_setting("max_epsilon_per_query", v) if valid_epsilon(v)

valid_setting("max_epsilon_per_role_day", v) if valid_epsilon(v)

valid_setting("purposes", v) if is_collection(v)

valid_setting("waive", v) if is_collection(v)

valid_setting("deny", v) if is_collection(v)

valid_setting("reserved", v) if is_object(v)

valid_setting("hide", v) if is_object(v)

valid_epsilon(v) if {
	is_number(v)
	v > 0
}

is_collection(v) if is_array(v)

is_collection(v) if is_set(v)

# ---- limits ----------------------------------------------------------------

# A limit starts from the built-in default, or from an explicit loosen value
# (the stricter one if both scopes loosen); every plain setting then
# tightens it. So a domain's tightening holds even where a site loosens.
min_cohort := max({base_min_cohort} | {x.value | some x in tightened.min_cohort; valid_setting("min_cohort", x.value)})

base_min_cohort := max(vs) if {
	vs := {x.value | some x in loosened.min_cohort; valid_setting("min_cohort", x.value)}
	count(vs) > 0
} else := defaults.min_cohort

max_epsilon_per_query := min({base_epsilon_per_query} | {x.value | some x in tightened.max_epsilon_per_query; valid_epsilon(x.value)})

base_epsilon_per_query := min(vs) if {
	vs := {x.value | some x in loosened.max_epsilon_per_query; valid_epsilon(x.value)}
	count(vs) > 0
} else := defaults.max_epsilon_per_query

max_epsilon_per_role_day := min({base_epsilon_per_role_day} | {x.value | some x in tightened.max_epsilon_per_role_day; valid_epsilon(x.value)})

base_epsilon_per_role_day := min(vs) if {
	vs := {x.value | some x in loosened.max_epsilon_per_role_day; valid_epsilon(x.value)}
	count(vs) > 0
} else := defaults.max_epsilon_per_role_day

# ---- purposes and dimensions -----------------------------------------------

site_purposes := p if {
	p := object.get(input, ["site", "purposes"], [])
	count(p) > 0
} else := defaults.purposes

# A purpose is allowed when the site declares it and every policy file that
# lists purposes lists it too.
purpose_allowed if {
	purpose in site_purposes
	not purpose_excluded
}

purpose_excluded if {
	some x in tightened.purposes
	not purpose in x.value
}

# The allowed purposes themselves, named in the purpose_not_allowed message.
allowed_purposes := {p |
	some p in site_purposes
	every x in object.get(tightened, "purposes", set()) {
		p in x.value
	}
}

# Reserved surfaces, as [pattern, purposes allowed to use it], from the site
# configuration (input.site.reserved) and from policy files (reserved).
reservations contains [pattern, purposes] if {
	some pattern, purposes in object.get(input, ["site", "reserved"], {})
}

reservations contains [pattern, purposes] if {
	some x in tightened.reserved
	some pattern, purposes in x.value
}

# Patterns this query's purpose may not touch.
reserved_elsewhere contains pattern if {
	some [pattern, purposes] in reservations
	not purpose in purposes
}

# Patterns policy files hide from this role: hide[role] and hide["*"].
hidden_for_role contains pattern if {
	some x in tightened.hide
	is_object(x.value) # else override_invalid, not a built-in error
	some key in [role, "*"]
	some pattern in object.get(x.value, key, [])
}

hidden_dimensions := reserved_elsewhere | hidden_for_role

# Patterns are exact dimension names or prefixes ending in '*', as in the
# site configuration's prop allow-lists.
matches(pattern, dim) if pattern == dim

matches(pattern, dim) if {
	endswith(pattern, "*")
	startswith(dim, trim_suffix(pattern, "*"))
}

# ---- waivers ---------------------------------------------------------------

waivers contains {"rule": rule, "kind": x.kind, "name": x.name} if {
	some x in loosened.waive
	some rule in x.value
	rule in waivable
}

waived_rules := {w.rule | some w in waivers}

# ---- built-in denials ------------------------------------------------------

deny_rule(rule, message) := {"rule": rule, "message": message}

builtin_denials contains deny_rule("role_no_analytics", sprintf("role %q may not query analytics", [role])) if {
	role in no_analytics_roles
}

builtin_denials contains deny_rule("unknown_role", "the token's role is not one that may query") if {
	not role in query_roles
	not role in no_analytics_roles
}

builtin_denials contains deny_rule("invalid_tier", "query tier must be \"released\" or \"ad_hoc\"") if {
	not tier in {"released", "ad_hoc"}
}

builtin_denials contains deny_rule("viewer_released_only", "viewers may use released statistics only, not ad hoc queries") if {
	role == "viewer"
	tier == "ad_hoc"
}

builtin_denials contains deny_rule("purpose_required", "ad hoc queries must declare a purpose") if {
	tier == "ad_hoc"
	purpose == ""
}

builtin_denials contains deny_rule("purpose_not_allowed", sprintf("purpose %q is not one this site allows (%s)", [purpose, concat(", ", sort(allowed_purposes))])) if {
	purpose != ""
	not purpose_allowed
}

builtin_denials contains deny_rule("purpose_reserved_dimension", sprintf("%s is reserved for other purposes than %q", [dim, purpose])) if {
	some dim in used_dimensions
	some pattern in reserved_elsewhere
	matches(pattern, dim)
}

builtin_denials contains deny_rule("dimension_hidden", sprintf("%s is not available to role %q on this site", [dim, role])) if {
	some dim in used_dimensions
	some pattern in hidden_for_role
	matches(pattern, dim)
}

builtin_denials contains deny_rule("epsilon_invalid", "ad hoc queries must carry a positive ε") if {
	tier == "ad_hoc"
	not epsilon_valid
}

builtin_denials contains deny_rule("epsilon_exceeds_query_max", sprintf("ε %v exceeds the per-query limit %v", [epsilon, max_epsilon_per_query])) if {
	tier == "ad_hoc"
	is_number(epsilon)
	epsilon > max_epsilon_per_query
}

builtin_denials contains deny_rule("epsilon_exceeds_role_day_max", sprintf("ε %v would bring this role's spend today to %v, above the daily limit %v", [epsilon, spent + epsilon, max_epsilon_per_role_day])) if {
	tier == "ad_hoc"
	is_number(epsilon)
	spent + epsilon > max_epsilon_per_role_day
}

# A malformed setting must not quietly fall back to the built-in value: it
# denies until the policy file is fixed (`veil policy test` shows it too).
builtin_denials contains deny_rule("override_invalid", sprintf("%s sets %s to an invalid value", [label(x), field])) if {
	some field, xs in tightened
	some x in xs
	not valid_setting(field, x.value)
}

builtin_denials contains deny_rule("override_invalid", sprintf("%s sets loosen.%s to an invalid value", [label(x), field])) if {
	some field, xs in loosened
	some x in xs
	not valid_setting(field, x.value)
}

builtin_denials contains deny_rule("override_invalid", sprintf("%s waives %q, which cannot be waived", [label(x), rule])) if {
	some x in loosened.waive
	some rule in x.value
	not rule in waivable
}

# ---- denials from policy files ---------------------------------------------

# `deny contains {"rule": ..., "message": ...}` (or a plain message string)
# in a site or domain package adds a denial.
override_denials contains override_denial(x, item) if {
	some x in tightened.deny
	some item in x.value
}

override_denial(x, item) := deny_rule(item.rule, message) if {
	is_object(item)
	is_string(item.rule)
	message := object.get(item, "message", "denied by policy")
	is_string(message)
} else := deny_rule("site_policy", item) if {
	is_string(item)
} else := deny_rule("override_invalid", sprintf("%s has a deny entry that is neither a message nor {rule, message}", [label(x)]))

# ---- reasons ---------------------------------------------------------------

# Reasons explain the constraints in force, so an answer (and its audit
# entry) can say why k or an ε limit differs from the defaults.
reasons contains "released tier: post-processing of published values, no ε charged" if tier == "released"

reasons contains sprintf("ad hoc tier: ε %v charged to the ledger; this role's spend today would be %v of %v", [epsilon, spent + epsilon, max_epsilon_per_role_day]) if {
	tier == "ad_hoc"
	epsilon_valid
}

limit_fields := {"min_cohort", "max_epsilon_per_query", "max_epsilon_per_role_day"}

reasons contains sprintf("%s sets %s %v", [label(x), field, x.value]) if {
	some field, xs in tightened
	field in limit_fields
	some x in xs
}

reasons contains sprintf("%s loosens %s to %v", [label(x), field, x.value]) if {
	some field, xs in loosened
	field in limit_fields
	some x in xs
}

reasons contains sprintf("%s limits purposes to %v", [label(x), x.value]) if some x in tightened.purposes

reasons contains sprintf("%s waived by %s", [d.rule, label(w)]) if {
	some d in builtin_denials
	some w in waivers
	w.rule == d.rule
}
