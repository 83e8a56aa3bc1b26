//! `cargo xtask openapi --compat REFERENCE`: compares our generated OpenAPI document with the
//! reference contract (the FastAPI/pydantic v2 document of Honcho v1.1.0), operation by operation.
//!
//! For every operation of the reference the report says `missing`, `ok`, or lists differences in
//! parameters (matched by name and location), the request body and the `200` response. Schemas are
//! compared field by field after resolving `$ref`s and normalising the spellings the two generators
//! use for the same thing:
//!
//! * `anyOf: [X, {type: null}]`, `oneOf: [{type: null}, X]` and `type: [X, "null"]` are all
//!   "X, nullable";
//! * `{}` or an absent schema means "any", and "any" in the reference matches anything;
//! * an object without properties whose `additionalProperties` is absent, `true` or `{}` is a
//!   free-form object (a dict);
//! * titles, descriptions, examples, defaults and `readOnly` are ignored; a string format is
//!   compared only when the reference has one (pydantic emits none for integers, utoipa does);
//! * the validation keywords in [`CONSTRAINTS`] are reported as their own `constraint` kind.
//!
//! Operations we have and the reference does not are listed as "additional", which is allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// The keys of a path item that are operations.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Validation keywords whose differences are reported with [`Kind::Constraint`].
const CONSTRAINTS: [&str; 10] = [
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
];

/// How many `$ref`s deep a schema is followed; deeper (or recursive) references compare as "any".
const MAX_REF_DEPTH: usize = 32;

// ------------------------------------------------------------------------------ report model

/// What a difference is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Something the reference has is absent from ours.
    Missing,
    /// Something required in ours is absent from the reference.
    Extra,
    /// Required in one document, optional in the other.
    Required,
    /// Different types (nullability included).
    Type,
    /// The reference has a string format ours does not match.
    Format,
    /// Different validation limits (`maxLength`, `minimum`, ...).
    Constraint,
    /// A media type or a whole response is absent.
    Content,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Required => "required",
            Kind::Type => "type",
            Kind::Format => "format",
            Kind::Constraint => "constraint",
            Kind::Content => "content",
        }
    }
}

/// One difference of one operation, e.g. `body.messages[].content: reference string, ours integer`.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub kind: Kind,
    /// `query param 'page'`, `body`, `body.messages[].content`, `response.items[].id`, ...
    pub location: String,
    pub detail: String,
}

/// The result for one operation of the reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Our document has no such operation.
    Missing,
    /// Compared: `ok` when `differences` is empty. Notes are harmless extras (optional fields...).
    Compared {
        differences: Vec<Difference>,
        notes: Vec<String>,
    },
}

/// One operation of the reference and how ours compares to it.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationReport {
    /// Lower case, as in the document (`get`, `post`, ...).
    pub method: String,
    pub path: String,
    pub outcome: Outcome,
}

impl OperationReport {
    /// The differences found (none for a missing operation).
    pub fn differences(&self) -> &[Difference] {
        match &self.outcome {
            Outcome::Missing => &[],
            Outcome::Compared { differences, .. } => differences,
        }
    }
}

/// The whole comparison; its `Display` is the printed report.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// One entry per operation of the reference.
    pub operations: Vec<OperationReport>,
    /// `(method, path)` of our operations the reference does not have.
    pub additional: Vec<(String, String)>,
}

impl Comparison {
    /// Sorts the operations by their position in `order`, `(method, path)` pairs in document
    /// order; operations not listed keep their relative order at the end.
    pub fn sort_by_order(&mut self, order: &[(String, String)]) {
        let position = |r: &OperationReport| {
            order
                .iter()
                .position(|(m, p)| *m == r.method && *p == r.path)
                .unwrap_or(usize::MAX)
        };
        self.operations.sort_by_key(position);
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut ok, mut differing, mut missing) = (0, 0, 0);
        let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
        for (n, report) in self.operations.iter().enumerate() {
            let differences = report.differences();
            let status = match &report.outcome {
                Outcome::Missing => {
                    missing += 1;
                    "MISSING".to_owned()
                }
                Outcome::Compared { .. } if differences.is_empty() => {
                    ok += 1;
                    "ok".to_owned()
                }
                Outcome::Compared { .. } => {
                    differing += 1;
                    let n = differences.len();
                    format!("{n} diff{}", if n == 1 { "" } else { "s" })
                }
            };
            let method = report.method.to_uppercase();
            writeln!(f, "{:>3}. {status:<8} {method:<6} {}", n + 1, report.path)?;
            for d in differences {
                *by_kind.entry(d.kind).or_default() += 1;
                let kind = format!("[{}]", d.kind.label());
                writeln!(f, "       {kind:<12} {}: {}", d.location, d.detail)?;
            }
            if let Outcome::Compared { notes, .. } = &report.outcome {
                for note in notes {
                    writeln!(f, "       {:<12} {note}", "(note)")?;
                }
            }
        }
        if !self.additional.is_empty() {
            writeln!(f, "\nAdditional operations (ours only, allowed):")?;
            for (method, path) in &self.additional {
                writeln!(f, "     {:<8} {:<6} {path}", "extra", method.to_uppercase())?;
            }
        }
        if !by_kind.is_empty() {
            let kinds: Vec<String> = by_kind
                .iter()
                .map(|(k, n)| format!("{} {n}", k.label()))
                .collect();
            writeln!(f, "\nDifferences by kind: {}", kinds.join(", "))?;
        }
        writeln!(
            f,
            "\n{} operations: {ok} ok, {differing} with differences, {missing} missing; {} additional",
            self.operations.len(),
            self.additional.len()
        )
    }
}

// ------------------------------------------------------------------------------ entry points

/// Operations allowed to be missing, or to have stricter constraints than the reference (limits the
/// reference leaves open and our specification sets), each as `METHOD /path`.
#[derive(Debug, Default)]
pub struct Allowances {
    pub missing: Vec<String>,
    pub constraints: Vec<String>,
}

fn named(list: &[String], method: &str, path: &str) -> bool {
    list.iter()
        .any(|a| a.eq_ignore_ascii_case(&format!("{method} {path}")))
}

/// Compares `ours` with the reference document at `reference_path` and prints the report. Fails
/// when an operation differs in a way that is not additive (constraint differences of operations
/// named in `allow.constraints` excepted), or is missing and not named in `allow.missing`.
pub fn run(ours: &Value, reference_path: &str, allow: &Allowances) -> Result<(), String> {
    let text = std::fs::read_to_string(reference_path)
        .map_err(|e| format!("compat: cannot read {reference_path}: {e}"))?;
    let reference: Value = serde_json::from_str(&text)
        .map_err(|e| format!("compat: {reference_path} is not valid JSON: {e}"))?;
    for (name, doc) in [(reference_path, &reference), ("our document", ours)] {
        if !doc.get("paths").is_some_and(Value::is_object) {
            return Err(format!(
                "compat: {name} is not an OpenAPI document (no `paths` object)"
            ));
        }
    }
    let mut comparison = compare(ours, &reference);
    comparison.sort_by_order(&document_order(&text));
    println!("Compatibility of our OpenAPI document with {reference_path}\n");
    print!("{comparison}");
    let failing: Vec<String> = (comparison.operations.iter())
        .filter(|r| match r.outcome {
            Outcome::Missing => !named(&allow.missing, &r.method, &r.path),
            Outcome::Compared { .. } => r.differences().iter().any(|d| {
                d.kind != Kind::Constraint || !named(&allow.constraints, &r.method, &r.path)
            }),
        })
        .map(|r| format!("{} {}", r.method.to_uppercase(), r.path))
        .collect();
    if failing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "compat: {} operation(s) differ from the reference or are missing: {}",
            failing.len(),
            failing.join(", ")
        ))
    }
}

/// Compares every operation of `reference` with the same operation of `ours`.
///
/// Operations come in the iteration order of `reference` (sorted, unless `serde_json`'s
/// `preserve_order` is on); see [`Comparison::sort_by_order`] and [`document_order`].
pub fn compare(ours: &Value, reference: &Value) -> Comparison {
    let theirs = operations(reference);
    let ours_ops = operations(ours);
    let mut matched = BTreeSet::new();
    let mut comparison = Comparison::default();
    for r in &theirs {
        let found = ours_ops
            .iter()
            .position(|o| o.method == r.method && o.path == r.path);
        let outcome = match found {
            None => Outcome::Missing,
            Some(i) => {
                matched.insert(i);
                let o = &ours_ops[i];
                let mut diffs = Diffs::default();
                compare_parameters(reference, r, ours, o, &mut diffs);
                compare_body(reference, r.op, ours, o.op, &mut diffs);
                compare_response(reference, r.op, ours, o.op, &mut diffs);
                Outcome::Compared {
                    differences: diffs.differences,
                    notes: diffs.notes,
                }
            }
        };
        comparison.operations.push(OperationReport {
            method: r.method.to_owned(),
            path: r.path.to_owned(),
            outcome,
        });
    }
    comparison.additional = (ours_ops.iter().enumerate())
        .filter(|(i, _)| !matched.contains(i))
        .map(|(_, o)| (o.method.to_owned(), o.path.to_owned()))
        .collect();
    comparison
}

// ------------------------------------------------------------------------------ operations

/// One operation of a document, borrowed from it.
struct Operation<'a> {
    method: &'a str,
    path: &'a str,
    /// The path item, which may hold parameters shared by its operations.
    item: &'a Value,
    op: &'a Value,
}

/// The operations of `doc` in its iteration order.
fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (path, item) in paths {
        let Some(methods) = item.as_object() else {
            continue;
        };
        for (method, op) in methods
            .iter()
            .filter(|(m, _)| METHODS.contains(&m.as_str()))
        {
            out.push(Operation {
                method,
                path,
                item,
                op,
            });
        }
    }
    out
}

/// Follows `$ref`s (to parameters, request bodies, responses...) until a concrete value.
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..MAX_REF_DEPTH {
        match value
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| pointer(doc, r))
        {
            Some(target) => value = target,
            None => break,
        }
    }
    value
}

/// Resolves a local reference such as `#/components/schemas/App`.
fn pointer<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// The collected differences and notes of one operation.
#[derive(Default)]
struct Diffs {
    differences: Vec<Difference>,
    notes: Vec<String>,
}

impl Diffs {
    fn push(&mut self, kind: Kind, location: &str, detail: impl Into<String>) {
        let (location, detail) = (location.to_owned(), detail.into());
        self.differences.push(Difference {
            kind,
            location,
            detail,
        });
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }
}

fn required_word(required: bool) -> &'static str {
    if required {
        "required"
    } else {
        "optional"
    }
}

/// The detail of a [`Kind::Missing`] difference.
fn missing(required_in_reference: bool) -> String {
    format!(
        "missing in ours ({} in reference)",
        required_word(required_in_reference)
    )
}

/// The detail of a [`Kind::Required`] difference.
fn required_change(theirs: bool, ours: bool) -> String {
    format!(
        "{} in reference, {} in ours",
        required_word(theirs),
        required_word(ours)
    )
}

const EXTRA_REQUIRED: &str = "required in ours, absent from reference";

/// The `required` flag of a parameter or request body (absent means optional).
fn is_required(value: &Value) -> bool {
    value
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A parameter of an operation, its schema normalised.
struct Param {
    name: String,
    location: String,
    required: bool,
    schema: Node,
}

impl Param {
    fn label(&self) -> String {
        format!("{} param '{}'", self.location, self.name)
    }
}

/// The parameters of `op`, including those of its path `item` that it does not override.
fn parameters(doc: &Value, item: &Value, op: &Value) -> Vec<Param> {
    let mut out: Vec<Param> = Vec::new();
    let lists = [item.get("parameters"), op.get("parameters")];
    for p in lists
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
    {
        let p = deref(doc, p);
        let text = |key: &str| {
            p.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let schema = p.get("schema").or_else(|| {
            let content = p.get("content").and_then(Value::as_object)?;
            content.values().next()?.get("schema")
        });
        let mut schema = Normalizer::new(doc).node(schema.unwrap_or(&Value::Null));
        // A query string or a path cannot carry a JSON null, so nullability means nothing here.
        schema.nullable = false;
        let param = Param {
            name: text("name"),
            location: text("in"),
            required: is_required(p),
            schema,
        };
        // Operation-level parameters override path-level ones.
        out.retain(|q| q.name != param.name || q.location != param.location);
        out.push(param);
    }
    out
}

fn compare_parameters(rdoc: &Value, r: &Operation, odoc: &Value, o: &Operation, out: &mut Diffs) {
    let theirs = parameters(rdoc, r.item, r.op);
    let ours = parameters(odoc, o.item, o.op);
    let find = |list: &'_ [Param], p: &Param| {
        list.iter()
            .position(|q| q.name == p.name && q.location == p.location)
    };
    for rp in &theirs {
        let loc = rp.label();
        let Some(i) = find(&ours, rp) else {
            out.push(Kind::Missing, &loc, missing(rp.required));
            continue;
        };
        let op = &ours[i];
        if rp.required != op.required {
            out.push(
                Kind::Required,
                &loc,
                required_change(rp.required, op.required),
            );
        }
        compare_nodes(&loc, &rp.schema, &op.schema, out);
    }
    for op in ours.iter().filter(|p| find(&theirs, p).is_none()) {
        if op.required {
            out.push(Kind::Extra, &op.label(), EXTRA_REQUIRED);
        } else {
            out.note(format!("{}: extra optional parameter in ours", op.label()));
        }
    }
}

fn compare_body(rdoc: &Value, rop: &Value, odoc: &Value, oop: &Value, out: &mut Diffs) {
    let theirs = rop.get("requestBody").map(|b| deref(rdoc, b));
    let ours = oop.get("requestBody").map(|b| deref(odoc, b));
    match (theirs, ours) {
        (None, None) => {}
        (None, Some(ob)) if is_required(ob) => out.push(Kind::Extra, "body", EXTRA_REQUIRED),
        (None, Some(_)) => {
            out.note("body: ours accepts an optional body the reference lacks".into());
        }
        (Some(rb), None) => out.push(Kind::Missing, "body", missing(is_required(rb))),
        (Some(rb), Some(ob)) => {
            let (rreq, oreq) = (is_required(rb), is_required(ob));
            if rreq != oreq {
                out.push(Kind::Required, "body", required_change(rreq, oreq));
            }
            compare_content("body", rdoc, rb, odoc, ob, out);
        }
    }
}

fn compare_response(rdoc: &Value, rop: &Value, odoc: &Value, oop: &Value, out: &mut Diffs) {
    fn ok_response<'a>(doc: &'a Value, op: &'a Value) -> Option<&'a Value> {
        op.get("responses")
            .and_then(|r| r.get("200"))
            .map(|r| deref(doc, r))
    }
    // Every status the reference documents is documented by ours (added statuses are fine).
    let codes = |op: &Value| -> Vec<String> {
        (op.get("responses").and_then(Value::as_object))
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    };
    let ours_codes = codes(oop);
    // (A missing 200 is reported below, with what ours answers instead.)
    for code in codes(rop).into_iter().filter(|c| c != "200") {
        if !ours_codes.contains(&code) {
            out.push(
                Kind::Missing,
                "response",
                format!("status {code} is not documented in ours"),
            );
        }
    }
    let Some(theirs) = ok_response(rdoc, rop) else {
        return;
    };
    if let Some(ours) = ok_response(odoc, oop) {
        compare_content("response", rdoc, theirs, odoc, ours, out);
    } else {
        let codes: Vec<&str> = (oop.get("responses").and_then(Value::as_object))
            .map(|r| r.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let detail = format!("no 200 response in ours (ours: {})", codes.join(", "));
        out.push(Kind::Missing, "response", detail);
    }
}

/// Compares the media types of a request body or response, and the schema of each.
fn compare_content(loc: &str, rdoc: &Value, r: &Value, odoc: &Value, o: &Value, out: &mut Diffs) {
    let empty = Map::new();
    let ours = o
        .get("content")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let theirs_all = r
        .get("content")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (media, theirs) in theirs_all {
        let Some(mine) = ours.get(media) else {
            out.push(
                Kind::Content,
                loc,
                format!("media type {media} missing in ours"),
            );
            continue;
        };
        let schema =
            |doc, m: &Value| Normalizer::new(doc).node(m.get("schema").unwrap_or(&Value::Null));
        compare_nodes(loc, &schema(rdoc, theirs), &schema(odoc, mine), out);
    }
}

// ------------------------------------------------------------------------------ schemas

/// A schema normalised for comparison: references resolved, nullability a flag.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    shape: Shape,
    /// `null` is accepted besides the shape (never set on `Any` or `Null`).
    nullable: bool,
    /// Values of the [`CONSTRAINTS`] keywords present.
    constraints: BTreeMap<&'static str, f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// No constraint at all (`{}`).
    Any,
    /// Only `null`.
    Null,
    /// `string`, `integer`, `number`, `boolean`.
    Scalar {
        ty: String,
        format: Option<String>,
    },
    Array(Box<Node>),
    /// `extra` is the schema of additional properties; `None` when they are forbidden.
    Object {
        props: BTreeMap<String, Node>,
        required: BTreeSet<String>,
        extra: Option<Box<Node>>,
    },
    /// One of several shapes (none of them `Null`, `Any` or a union).
    Union(Vec<Node>),
}

impl Node {
    fn new(shape: Shape) -> Self {
        Node {
            shape,
            nullable: false,
            constraints: BTreeMap::new(),
        }
    }

    fn any() -> Self {
        Node::new(Shape::Any)
    }

    /// What must be equal for two nodes to be comparable further ("object", "array", ...).
    fn kind_key(&self) -> String {
        match &self.shape {
            Shape::Any => "any".into(),
            Shape::Null => "null".into(),
            Shape::Scalar { ty, .. } => ty.clone(),
            Shape::Array(_) => "array".into(),
            Shape::Object { props, extra, .. } => match extra {
                Some(e) if props.is_empty() && e.shape == Shape::Any => "free-form object".into(),
                Some(_) if props.is_empty() => "map".into(),
                _ => "object".into(),
            },
            Shape::Union(members) => {
                let mut keys: Vec<String> = members.iter().map(Node::kind_key).collect();
                keys.sort();
                format!("union({})", keys.join("|"))
            }
        }
    }

    /// A short human-readable type, e.g. `array<string> | null`.
    fn label(&self) -> String {
        let base = match &self.shape {
            Shape::Array(items) => format!("array<{}>", items.label()),
            Shape::Object {
                props,
                extra: Some(e),
                ..
            } if props.is_empty() && e.shape != Shape::Any => {
                format!("map<{}>", e.label())
            }
            Shape::Union(members) => members
                .iter()
                .map(Node::label)
                .collect::<Vec<_>>()
                .join(" | "),
            _ => self.kind_key(),
        };
        if self.nullable {
            format!("{base} | null")
        } else {
            base
        }
    }
}

/// Turns the JSON schemas of one document into [`Node`]s.
struct Normalizer<'a> {
    doc: &'a Value,
    /// The references being resolved, to cut cycles.
    stack: Vec<String>,
}

impl<'a> Normalizer<'a> {
    fn new(doc: &'a Value) -> Self {
        Normalizer {
            doc,
            stack: Vec::new(),
        }
    }

    fn node(&mut self, schema: &Value) -> Node {
        // `true`, a missing schema (passed as `null`) and anything odd accept anything.
        let Some(obj) = schema.as_object() else {
            return Node::any();
        };
        let mut node = if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
            // Siblings of a `$ref` are descriptions and defaults, except a nullability flag.
            self.reference(target)
        } else if let Some(members) = obj.get("anyOf").or_else(|| obj.get("oneOf")) {
            self.union(members.as_array().map(Vec::as_slice).unwrap_or_default())
        } else if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
            self.all_of(parts)
        } else {
            self.typed(obj)
        };
        for key in CONSTRAINTS {
            if let Some(v) = obj.get(key).and_then(Value::as_f64) {
                node.constraints.entry(key).or_insert(v);
            }
        }
        if obj.get("nullable").and_then(Value::as_bool) == Some(true) {
            node.nullable = true;
        }
        if matches!(node.shape, Shape::Any | Shape::Null) {
            node.nullable = false;
        }
        node
    }

    fn reference(&mut self, target: &str) -> Node {
        if self.stack.iter().any(|t| t == target) || self.stack.len() >= MAX_REF_DEPTH {
            return Node::any();
        }
        let Some(schema) = pointer(self.doc, target) else {
            let ty = format!("unresolved {target}");
            return Node::new(Shape::Scalar { ty, format: None });
        };
        self.stack.push(target.to_owned());
        let node = self.node(schema);
        self.stack.pop();
        node
    }

    /// `anyOf`/`oneOf`: `null` members become the nullable flag, nested unions are flattened.
    fn union(&mut self, members: &[Value]) -> Node {
        let mut nullable = false;
        let mut shapes: Vec<Node> = Vec::new();
        for member in members {
            let n = self.node(member);
            nullable |= n.nullable;
            let flattened = match n.shape {
                Shape::Null => {
                    nullable = true;
                    Vec::new()
                }
                Shape::Any => return Node::any(),
                Shape::Union(inner) => inner,
                shape => vec![Node {
                    shape,
                    nullable: false,
                    ..n
                }],
            };
            for n in flattened {
                if !shapes.contains(&n) {
                    shapes.push(n);
                }
            }
        }
        let mut node = match shapes.len() {
            0 => Node::new(Shape::Null),
            1 => shapes.remove(0),
            _ => Node::new(Shape::Union(shapes)),
        };
        node.nullable = nullable;
        node
    }

    /// `allOf`: a single part is that part; object parts are merged.
    fn all_of(&mut self, parts: &[Value]) -> Node {
        let mut nodes = parts
            .iter()
            .map(|p| self.node(p))
            .filter(|n| n.shape != Shape::Any);
        let Some(mut node) = nodes.next() else {
            return Node::any();
        };
        for part in nodes {
            if let (
                Shape::Object {
                    props, required, ..
                },
                Shape::Object {
                    props: more,
                    required: more_required,
                    ..
                },
            ) = (&mut node.shape, part.shape)
            {
                for (name, prop) in more {
                    props.entry(name).or_insert(prop);
                }
                required.extend(more_required);
            }
        }
        node
    }

    /// A schema described by `type` (a name or a list of names), or inferred from its keywords.
    fn typed(&mut self, obj: &Map<String, Value>) -> Node {
        let mut types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if obj.contains_key("properties") || obj.contains_key("additionalProperties") => {
                vec!["object"]
            }
            _ if obj.contains_key("items") => vec!["array"],
            _ => Vec::new(),
        };
        let nullable = types.contains(&"null");
        types.retain(|t| *t != "null");
        let mut shapes: Vec<Node> = types
            .iter()
            .map(|t| Node::new(self.shape(t, obj)))
            .collect();
        let mut node = match shapes.len() {
            0 if nullable => Node::new(Shape::Null),
            0 => Node::any(),
            1 => shapes.remove(0),
            _ => Node::new(Shape::Union(shapes)),
        };
        node.nullable = nullable;
        node
    }

    fn shape(&mut self, ty: &str, obj: &Map<String, Value>) -> Shape {
        match ty {
            "array" => {
                let items = obj.get("items").map_or_else(Node::any, |i| self.node(i));
                Shape::Array(Box::new(items))
            }
            "object" => {
                let required = (obj.get("required").and_then(Value::as_array))
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                let props = (obj.get("properties").and_then(Value::as_object))
                    .map(|p| p.iter().map(|(k, v)| (k.clone(), self.node(v))).collect())
                    .unwrap_or_default();
                let extra = match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => None,
                    Some(s @ Value::Object(_)) => Some(Box::new(self.node(s))),
                    _ => Some(Box::new(Node::any())),
                };
                Shape::Object {
                    props,
                    required,
                    extra,
                }
            }
            _ => Shape::Scalar {
                ty: ty.to_owned(),
                format: obj.get("format").and_then(Value::as_str).map(str::to_owned),
            },
        }
    }
}

/// Compares our schema `o` with the reference schema `r` at `loc`.
fn compare_nodes(loc: &str, r: &Node, o: &Node, out: &mut Diffs) {
    if r.shape == Shape::Any {
        return;
    }
    let same_kind = r.kind_key() == o.kind_key();
    if !same_kind || r.nullable != o.nullable {
        out.push(
            Kind::Type,
            loc,
            format!("reference {}, ours {}", r.label(), o.label()),
        );
    }
    if !same_kind {
        return;
    }
    for key in CONSTRAINTS {
        let (theirs, ours) = (r.constraints.get(key), o.constraints.get(key));
        if theirs != ours {
            let show = |v: Option<&f64>| v.map_or_else(|| "none".to_owned(), f64::to_string);
            let detail = format!("{key}: reference {}, ours {}", show(theirs), show(ours));
            out.push(Kind::Constraint, loc, detail);
        }
    }
    match (&r.shape, &o.shape) {
        (
            Shape::Scalar {
                format: Some(theirs),
                ..
            },
            Shape::Scalar { format: ours, .. },
        ) if Some(theirs) != ours.as_ref() => {
            let ours = ours.as_deref().unwrap_or("none");
            out.push(
                Kind::Format,
                loc,
                format!("reference {theirs}, ours {ours}"),
            );
        }
        (Shape::Array(theirs), Shape::Array(ours)) => {
            compare_nodes(&format!("{loc}[]"), theirs, ours, out);
        }
        (
            Shape::Object {
                props,
                required,
                extra,
            },
            Shape::Object {
                props: our_props,
                required: our_required,
                extra: our_extra,
            },
        ) => {
            for (name, theirs) in props {
                let field = format!("{loc}.{name}");
                let req = required.contains(name);
                let Some(ours) = our_props.get(name) else {
                    out.push(Kind::Missing, &field, missing(req));
                    continue;
                };
                let our_req = our_required.contains(name);
                if req != our_req {
                    out.push(Kind::Required, &field, required_change(req, our_req));
                }
                compare_nodes(&field, theirs, ours, out);
            }
            for name in our_props.keys().filter(|n| !props.contains_key(*n)) {
                let field = format!("{loc}.{name}");
                if our_required.contains(name) {
                    out.push(Kind::Extra, &field, EXTRA_REQUIRED);
                } else {
                    out.note(format!("{field}: extra optional field in ours"));
                }
            }
            if let (Some(theirs), Some(ours)) = (extra, our_extra) {
                compare_nodes(&format!("{loc}{{*}}"), theirs, ours, out);
            }
        }
        (Shape::Union(theirs), Shape::Union(ours)) => {
            // Equal kind keys: the same kinds of members, paired in kind order.
            fn sorted(members: &[Node]) -> Vec<&Node> {
                let mut members: Vec<&Node> = members.iter().collect();
                members.sort_by_key(|n| n.kind_key());
                members
            }
            for (t, o) in sorted(theirs).into_iter().zip(sorted(ours)) {
                compare_nodes(loc, t, o, out);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------ document order

/// The `(method, path)` operations of an `OpenAPI` JSON text in document order.
///
/// `serde_json`'s `Map` sorts its keys unless its `preserve_order` feature is on, so the order of
/// the reference is recovered from its text with a minimal scanner (the text is valid JSON).
pub fn document_order(text: &str) -> Vec<(String, String)> {
    let mut order = Vec::new();
    let mut scanner = Scanner { text, pos: 0 };
    // A scanning failure leaves a partial order; unlisted operations are then sorted last.
    let _ = scanner.members(&mut |s, key| {
        if key.as_deref() != Some("paths") {
            return s.skip_value();
        }
        s.members(&mut |s, path| {
            let path = path.unwrap_or_default();
            s.members(&mut |s, method| {
                if let Some(method) = method.filter(|m| METHODS.contains(&m.as_str())) {
                    order.push((method, path.clone()));
                }
                s.skip_value()
            })
        })
    });
    order
}

/// Walks JSON text without building values; every method returns `None` on unexpected input.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl Scanner<'_> {
    /// The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while bytes.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
        bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn string(&mut self) -> Option<String> {
        self.peek()?;
        let start = self.pos;
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(self.pos)? {
                b'\\' => self.pos += 2,
                b'"' => break,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        // Let serde_json undo the escapes.
        serde_json::from_str(self.text.get(start..self.pos)?).ok()
    }

    /// Calls `each` for every member of the object or array at the cursor, with the member's key
    /// (`None` in arrays) and the cursor on its value, which `each` must consume.
    fn members(
        &mut self,
        each: &mut dyn FnMut(&mut Self, Option<String>) -> Option<()>,
    ) -> Option<()> {
        let close = match self.peek()? {
            b'{' => b'}',
            b'[' => b']',
            _ => return None,
        };
        self.pos += 1;
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            let key = if close == b'}' {
                let key = self.string()?;
                self.eat(b':')?;
                Some(key)
            } else {
                None
            };
            each(self, key)?;
            if self.eat(close).is_some() {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'{' | b'[' => self.members(&mut |s, _| s.skip_value()),
            b'"' => self.string().map(drop),
            _ => {
                // A number, `true`, `false` or `null`.
                let bytes = self.text.as_bytes();
                let end = |b: &u8| b",]} \t\r\n".contains(b);
                while bytes.get(self.pos).is_some_and(|b| !end(b)) {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

// ------------------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small reference in the pydantic style.
    fn reference() -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {
                "/v1/apps/{app_id}/messages": {
                    "post": {
                        "parameters": [
                            {"name": "app_id", "in": "path", "required": true,
                             "schema": {"type": "string", "title": "App Id"}},
                            {"name": "reverse", "in": "query", "required": false,
                             "schema": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}
                        ],
                        "requestBody": {"required": true, "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Batch", "description": "d"}}}},
                        "responses": {"200": {"description": "ok", "content": {"application/json": {
                            "schema": {"type": "array",
                                       "items": {"$ref": "#/components/schemas/Message"}}}}}}
                    },
                    "get": {
                        "parameters": [{"name": "app_id", "in": "path", "required": true,
                                        "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "ok", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Message"}}}}}
                    }
                },
                "/v1/keys": {"post": {"responses": {"200": {"description": "ok",
                    "content": {"application/json": {"schema": {}}}}}}}
            },
            "components": {"schemas": {
                "Batch": {"type": "object", "required": ["messages"], "properties": {
                    "messages": {"type": "array", "maxItems": 100,
                                 "items": {"$ref": "#/components/schemas/MessageCreate"}}}},
                "MessageCreate": {"type": "object", "required": ["content", "is_user"],
                    "properties": {
                    "content": {"type": "string", "maxLength": 50000, "title": "Content"},
                    "is_user": {"type": "boolean"},
                    "metadata": {"type": "object", "additionalProperties": true, "default": {}}}},
                "Message": {"type": "object", "required": ["id", "created_at", "session_id"],
                    "properties": {
                        "id": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "session_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        "kind": {"type": "string", "readOnly": true}}}
            }}
        })
    }

    fn set(doc: &mut Value, pointer: &str, value: Value) {
        *doc.pointer_mut(pointer).expect("pointer exists") = value;
    }

    fn schema(name: &str) -> String {
        format!("/components/schemas/{name}")
    }

    const MESSAGES: &str = "/v1/apps/{app_id}/messages";

    /// The report of `method path` (found by name: the order of a `Map` depends on features).
    fn find<'a>(comparison: &'a Comparison, method: &str, path: &str) -> &'a OperationReport {
        let mut reports = comparison.operations.iter();
        let found = reports.find(|r| r.method == method && r.path == path);
        found.expect("operation reported")
    }

    /// The differences of ours with the reference for `method path`.
    fn diffs(ours: &Value, method: &str, path: &str) -> Vec<Difference> {
        find(&compare(ours, &reference()), method, path)
            .differences()
            .to_vec()
    }

    #[test]
    fn identical_documents_have_no_differences() {
        let comparison = compare(&reference(), &reference());
        assert_eq!(comparison.operations.len(), 3);
        for report in &comparison.operations {
            assert_eq!(
                report.outcome,
                Outcome::Compared {
                    differences: vec![],
                    notes: vec![]
                }
            );
        }
        assert!(comparison.additional.is_empty());
        assert!(comparison
            .to_string()
            .ends_with("3 operations: 3 ok, 0 with differences, 0 missing; 0 additional\n"));
    }

    #[test]
    fn missing_and_additional_operations() {
        let mut ours = reference();
        let paths = ours["paths"].as_object_mut().unwrap();
        paths.remove("/v1/keys");
        paths.insert("/health".into(), json!({"get": {"responses": {}}}));
        let comparison = compare(&ours, &reference());
        let keys = comparison
            .operations
            .iter()
            .find(|r| r.path == "/v1/keys")
            .unwrap();
        assert_eq!(keys.outcome, Outcome::Missing);
        assert_eq!(
            comparison.additional,
            vec![("get".to_owned(), "/health".to_owned())]
        );
        let text = comparison.to_string();
        assert!(text.contains("MISSING  POST   /v1/keys"), "{text}");
        assert!(text.ends_with("3 operations: 2 ok, 0 with differences, 1 missing; 1 additional\n"));
    }

    #[test]
    fn nested_type_change_is_located() {
        let mut ours = reference();
        set(
            &mut ours,
            &(schema("MessageCreate") + "/properties/content"),
            json!({"type": "integer"}),
        );
        let found = diffs(&ours, "post", MESSAGES);
        assert_eq!(found.len(), 1, "{found:?}"); // a type change hides the rest
        assert_eq!(found[0].kind, Kind::Type);
        assert_eq!(found[0].location, "body.messages[].content");
        assert_eq!(found[0].detail, "reference string, ours integer");
        // integer vs number differ too
        set(
            &mut ours,
            &(schema("MessageCreate") + "/properties/content"),
            json!({"type": "number"}),
        );
        let mut theirs = reference();
        set(
            &mut theirs,
            &(schema("MessageCreate") + "/properties/content"),
            json!({"type": "integer"}),
        );
        let comparison = compare(&ours, &theirs);
        let found = find(&comparison, "post", MESSAGES).differences();
        assert_eq!(found[0].detail, "reference integer, ours number");
    }

    #[test]
    fn required_ness_changes() {
        let mut ours = reference();
        set(
            &mut ours,
            &(schema("MessageCreate") + "/required"),
            json!(["content"]),
        );
        set(
            &mut ours,
            &(schema("Message") + "/required"),
            json!(["id", "created_at", "session_id", "kind"]),
        );
        set(
            &mut ours,
            "/paths/~1v1~1apps~1{app_id}~1messages/post/parameters/1/required",
            json!(true),
        );
        let found = diffs(&ours, "post", MESSAGES);
        let got: Vec<(&str, Kind)> = found
            .iter()
            .map(|d| (d.location.as_str(), d.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("query param 'reverse'", Kind::Required),
                ("body.messages[].is_user", Kind::Required),
                ("response[].kind", Kind::Required),
            ]
        );
    }

    #[test]
    fn nullability_spellings_are_equal() {
        let pointer = schema("Message") + "/properties/session_id";
        for spelling in [
            json!({"type": ["string", "null"]}),
            json!({"oneOf": [{"type": "null"}, {"type": "string"}]}),
            json!({"type": "string", "nullable": true}),
        ] {
            let mut ours = reference();
            set(&mut ours, &pointer, spelling);
            assert_eq!(diffs(&ours, "get", MESSAGES), []);
        }
        let mut ours = reference();
        set(&mut ours, &pointer, json!({"type": "string"}));
        let found = diffs(&ours, "get", MESSAGES);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].detail, "reference string | null, ours string");
        // Query parameters cannot carry null: a plain boolean matches `anyOf [boolean, null]`.
        set(
            &mut ours,
            "/paths/~1v1~1apps~1{app_id}~1messages/post/parameters/1/schema",
            json!({"type": "boolean"}),
        );
        assert!(diffs(&ours, "post", MESSAGES)
            .iter()
            .all(|d| d.location != "query param 'reverse'"));
    }

    #[test]
    fn free_form_objects_and_any_match() {
        let mut ours = reference();
        set(
            &mut ours,
            &(schema("MessageCreate") + "/properties/metadata"),
            json!({"type": "object", "additionalProperties": {}}),
        );
        set(
            &mut ours,
            "/paths/~1v1~1keys/post/responses/200/content/application~1json/schema",
            json!({"type": "object", "properties": {"key": {"type": "string"}}}),
        );
        let comparison = compare(&ours, &reference());
        assert!(comparison
            .operations
            .iter()
            .all(|r| r.differences().is_empty()));
        // A typed map is not a free-form object.
        set(
            &mut ours,
            &(schema("MessageCreate") + "/properties/metadata"),
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
        );
        let found = diffs(&ours, "post", MESSAGES);
        assert_eq!(
            found[0].detail,
            "reference free-form object, ours map<string>"
        );
    }

    #[test]
    fn formats_constraints_and_extra_fields() {
        let mut ours = reference();
        set(
            &mut ours,
            &(schema("Message") + "/properties/created_at"),
            json!({"type": "string"}),
        );
        set(
            &mut ours,
            &(schema("Batch") + "/properties/messages/maxItems"),
            json!(50),
        );
        let batch = ours.pointer_mut(&schema("Batch")).unwrap();
        batch["properties"]["extra"] = json!({"type": "integer"});
        batch["properties"]["dry_run"] = json!({"type": "boolean"});
        batch["required"] = json!(["messages", "extra"]);
        let comparison = compare(&ours, &reference());
        let post = find(&comparison, "post", MESSAGES);
        let got: Vec<String> = post
            .differences()
            .iter()
            .map(|d| format!("{} {}: {}", d.kind.label(), d.location, d.detail))
            .collect();
        assert_eq!(
            got,
            [
                "constraint body.messages: maxItems: reference 100, ours 50",
                "extra body.extra: required in ours, absent from reference",
                "format response[].created_at: reference date-time, ours none",
            ]
        );
        let Outcome::Compared { notes, .. } = &post.outcome else {
            panic!("compared")
        };
        assert_eq!(notes, &["body.dry_run: extra optional field in ours"]);
    }

    #[test]
    fn bodies_responses_and_media_types() {
        let mut ours = reference();
        let post = ours
            .pointer_mut("/paths/~1v1~1apps~1{app_id}~1messages/post")
            .unwrap();
        post.as_object_mut().unwrap().remove("requestBody");
        let get = ours
            .pointer_mut("/paths/~1v1~1apps~1{app_id}~1messages/get")
            .unwrap();
        get["responses"] = json!({"204": {"description": "no content"}});
        set(
            &mut ours,
            "/paths/~1v1~1keys/post/responses/200",
            json!({"description": "ok"}),
        );
        let comparison = compare(&ours, &reference());
        let show = |method, path| -> Vec<String> {
            let report = find(&comparison, method, path).differences().iter();
            report
                .map(|d| format!("{}: {}", d.location, d.detail))
                .collect()
        };
        assert_eq!(
            show("post", MESSAGES),
            ["body: missing in ours (required in reference)"]
        );
        assert_eq!(
            show("get", MESSAGES),
            ["response: no 200 response in ours (ours: 204)"]
        );
        let keys = ["response: media type application/json missing in ours"];
        assert_eq!(show("post", "/v1/keys"), keys);
    }

    #[test]
    fn document_order_follows_the_text() {
        let text = r#"{"openapi": "3.1.0", "x": [1, {"a": "}"}],
            "paths": {"/b": {"post": {}, "parameters": [], "get": {"k": "\"{"}},
                      "/a\u0041": {"delete": null}},
            "components": {}}"#;
        let order = document_order(text);
        let expected = [("post", "/b"), ("get", "/b"), ("delete", "/aA")];
        assert_eq!(order, expected.map(|(m, p)| (m.to_owned(), p.to_owned())));
    }

    #[test]
    fn a_status_the_reference_documents_must_stay_documented() {
        let doc =
            |responses: Value| json!({"paths": {"/v1/keys": {"post": {"responses": responses}}}});
        let reference = doc(json!({"200": {"description": "ok"}, "422": {"description": "bad"}}));
        let ours = doc(json!({"200": {"description": "ok"}, "503": {"description": "down"}}));
        let comparison = compare(&ours, &reference);
        let details: Vec<&str> = find(&comparison, "post", "/v1/keys")
            .differences()
            .iter()
            .map(|d| d.detail.as_str())
            .collect();
        assert_eq!(details, ["status 422 is not documented in ours"]);
        let both = doc(
            json!({"200": {"description": "ok"}, "422": {"description": "bad"},
            "503": {"description": "down"}}),
        );
        assert!(find(&compare(&both, &reference), "post", "/v1/keys")
            .differences()
            .is_empty());
    }
}
