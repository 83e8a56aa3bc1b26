//! Extractors that answer bad input the way the v1.1.0 contract does: FastAPI-shaped 422s with a
//! precise `loc`, a 413 for an oversized body, never a 500.

use crate::error::{ApiError, ValidationIssue};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use honcho_domain::page::{PageRequest, SIZE_DEFAULT, SIZE_MAX};
use honcho_domain::Invalid;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use utoipa::IntoParams;

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// A required JSON body.
pub struct Body<T>(pub T);

/// An optional JSON body: absent, empty or `null` is `None`.
pub struct OptionalBody<T>(pub Option<T>);

/// How long a client has to send a request's body once its headers arrived.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

async fn read_body(req: HttpRequest, mut payload: Payload) -> Result<web::Bytes, ApiError> {
    let limit = req
        .app_data::<web::Data<BodyTimeout>>()
        .map_or(std::time::Duration::from_secs(30), |t| t.0);
    let read = web::Bytes::from_request(&req, &mut payload);
    let Ok(bytes) = actix_web::rt::time::timeout(limit, read).await else {
        return Err(ApiError::Status(
            StatusCode::REQUEST_TIMEOUT,
            format!("Request body not received within {} s", limit.as_secs_f64()),
        ));
    };
    bytes.map_err(|e| {
        let too_large = matches!(
            e.as_error::<PayloadError>(),
            Some(PayloadError::Overflow) | Some(PayloadError::UnknownLength)
        ) || e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE;
        if too_large {
            ApiError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large".into(),
            )
        } else {
            ApiError::Status(
                StatusCode::BAD_REQUEST,
                format!("Could not read the request body: {e}"),
            )
        }
    })
}

/// Parses bytes as JSON, then as `T`, reporting the first problem with its location. A JSON object
/// that is a valid `T` is read straight into it (costing about its own size); anything else goes
/// through a generic value, to find and list every problem as FastAPI would.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(t) = typed::<T>(bytes) {
        return Ok(t);
    }
    from_value(&parse_value(bytes)?)
}

/// `bytes` read straight into `T` when they are a JSON object that is one (not an array, which
/// serde would read into a struct field by field: the contract refuses it).
fn typed<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    (*first == b'{')
        .then(|| serde_json::from_slice::<T>(bytes).ok())
        .flatten()
}

/// The longest array any field of any body may hold (metadata arrays, a batch's messages, chat's
/// queries); a longer one is refused before the body becomes a JSON value.
fn array_max() -> usize {
    honcho_domain::values::metadata_limits()
        .array_max
        .max(honcho_domain::values::BATCH_MAX)
}

/// The most JSON values (objects, arrays, strings, numbers...) one body may hold: a parsed value
/// costs tens of bytes per JSON value whatever its text, so this bounds a body's memory.
pub const BODY_VALUES_MAX: usize = 500_000;

/// Bodies larger than this are parsed on the blocking pool, not on the HTTP worker's thread.
const PARSE_INLINE_MAX: usize = 64 * 1024;

/// What a body's parsing may cost at once across the process: past it, 503 and `Retry-After`
/// rather than memory growth.
pub const PARSE_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// How long a body waits for its share of the budget.
const PARSE_BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn parse_budget() -> &'static tokio::sync::Semaphore {
    static BUDGET: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    BUDGET.get_or_init(|| tokio::sync::Semaphore::new(PARSE_BUDGET_BYTES))
}

/// Why a body's shape is refused before it is parsed.
enum ShapeProblem {
    ArrayTooLong { loc: Vec<Value>, len: usize },
    TooManyValues,
}

/// Walks a body's JSON without keeping it, counting its values and the length of its arrays, so
/// that a body whose parsed value would cost far more than its text is refused first. Malformed
/// JSON passes (parsing reports it).
fn check_shape(bytes: &[u8]) -> Result<usize, ApiError> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    struct Walk<'s> {
        loc: &'s RefCell<Vec<Value>>,
        values: &'s RefCell<usize>,
        problem: &'s RefCell<Option<ShapeProblem>>,
        array_max: usize,
    }
    impl<'s> Walk<'s> {
        fn again(&self) -> Walk<'s> {
            Walk { ..*self }
        }
        fn count<E: serde::de::Error>(&self) -> Result<(), E> {
            let mut values = self.values.borrow_mut();
            *values += 1;
            if *values > BODY_VALUES_MAX {
                *self.problem.borrow_mut() = Some(ShapeProblem::TooManyValues);
                return Err(E::custom("shape"));
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
            self.count()
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
            self.count()
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
            self.count()
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
            self.count()
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
            self.count()
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            self.count()
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.count()?;
            let mut len = 0;
            loop {
                self.loc.borrow_mut().push(json!(len));
                let more = seq.next_element_seed(self.again())?;
                self.loc.borrow_mut().pop();
                if more.is_none() {
                    return Ok(());
                }
                len += 1;
                if len > self.array_max {
                    let loc = self.loc.borrow().clone();
                    *self.problem.borrow_mut() = Some(ShapeProblem::ArrayTooLong { loc, len });
                    return Err(serde::de::Error::custom("shape"));
                }
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            self.count()?;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                self.loc.borrow_mut().push(json!(key));
                let walked = map.next_value_seed(self.again());
                self.loc.borrow_mut().pop();
                walked?;
            }
            Ok(())
        }
    }

    let (loc, values, problem) = Default::default();
    let walk = Walk {
        loc: &loc,
        values: &values,
        problem: &problem,
        array_max: array_max(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let _ = walk.deserialize(&mut de);
    match problem.into_inner() {
        None => Ok(values.into_inner()),
        Some(ShapeProblem::TooManyValues) => Err(ApiError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large: more than {BODY_VALUES_MAX} JSON values"),
        )),
        Some(ShapeProblem::ArrayTooLong { loc, len }) => {
            let mut at = vec![json!("body")];
            at.extend(loc);
            let rule = format!("an array may have at most {} elements", array_max());
            Err(ApiError::validation(ValidationIssue::from_invalid(
                at,
                &Invalid::Rule(format!("{rule}, not {len} or more")),
                Value::Null,
            )))
        }
    }
}

/// Reads a request's body and parses it with `parse` (to a `T`), within the process's budget of
/// bytes being read and parsed at once: the body's expected cost (three times its declared length:
/// its bytes, its parsed value, the result) is reserved before it is read, and past the budget
/// the request is a 503 with `Retry-After` rather than memory growth. Its shape is checked before it
/// is parsed (`check_shape`); a large body is parsed off the HTTP worker's thread, one per core at
/// a time.
async fn read_and_parse<T: Send + 'static>(
    req: HttpRequest,
    mut payload: Payload,
    parse: fn(&[u8]) -> Result<Option<T>, ApiError>,
) -> Result<Option<T>, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(PARSE_BUDGET_BYTES / 8);
    let cost = declared.saturating_mul(3).clamp(1, PARSE_BUDGET_BYTES);
    let _reserved = if declared > PARSE_INLINE_MAX {
        let permits = u32::try_from(cost).unwrap_or(u32::MAX);
        let wait =
            actix_web::rt::time::timeout(PARSE_BUDGET_WAIT, parse_budget().acquire_many(permits))
                .await;
        let Ok(Ok(reserved)) = wait else {
            // The body is read and dropped as it comes (a client still sending it would see a
            // broken connection instead of the answer), keeping none of it.
            drain(&req, &mut payload).await;
            return Err(busy(format!("the parse budget has no {cost} bytes free")));
        };
        Some(reserved)
    } else {
        None
    };
    let bytes = read_body(req, payload).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if bytes.len() <= PARSE_INLINE_MAX {
        check_shape(&bytes)?;
        return parse(&bytes);
    }
    let checked = bytes.clone();
    web::block(move || check_shape(&checked)).await??;
    // At most one large parse per core at a time: more would only take turns on the cores with
    // everything else (the HTTP workers answering `/health` included).
    let Ok(Ok(_turn)) =
        actix_web::rt::time::timeout(PARSE_BUDGET_WAIT, parse_turns().acquire()).await
    else {
        return Err(busy("no turn to parse a large body came in time".into()));
    };
    web::block(move || parse(&bytes)).await?
}

/// Reads the rest of a request's body and drops it, within the body timeout.
async fn drain(req: &HttpRequest, payload: &mut Payload) {
    use futures_util::StreamExt;
    let limit = req
        .app_data::<web::Data<BodyTimeout>>()
        .map_or(std::time::Duration::from_secs(30), |t| t.0);
    let _ = actix_web::rt::time::timeout(limit, async {
        while let Some(Ok(_)) = payload.next().await {}
    })
    .await;
}

/// 503 for a server with too many large bodies in hand.
fn busy(cause: String) -> ApiError {
    ApiError::Unavailable {
        detail: "Server busy: too many large request bodies are being read; try again".into(),
        cause,
    }
}

fn parse_turns() -> &'static tokio::sync::Semaphore {
    static TURNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    TURNS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Parses bytes as JSON; malformed JSON is FastAPI's `json_invalid` at the byte where it broke.
fn parse_value(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let position = byte_offset(bytes, e.line(), e.column());
        // Only the head of the body is echoed (`error::echo`), so only the head is copied: more
        // than 4 bytes per character shown is more characters than are shown.
        let head = &bytes[..bytes.len().min(crate::error::ECHO_MAX * 4 + 4)];
        let input = Value::String(String::from_utf8_lossy(head).into_owned());
        ApiError::validation(
            ValidationIssue::new(
                "json_invalid",
                vec![json!("body"), json!(position)],
                "JSON decode error",
                input,
            )
            .with_ctx(json!({ "error": json_error_text(&e) })),
        )
    })
}

/// Deserialises an already parsed body. Every body of the API is an object.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::validation(ValidationIssue::new(
            "model_attributes_type",
            vec![json!("body")],
            "Input should be a valid dictionary or object to extract fields from",
            value.clone(),
        )));
    }
    let first = match serde_path_to_error::deserialize(value) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    Err(ApiError::Validation(every_issue::<T>(value, first)))
}

/// Most problems listed for one body.
const ISSUES_MAX: usize = 32;

/// Every problem of a body that does not deserialise into `T`, in `T`'s field order as FastAPI lists
/// them. serde stops at the first problem, so each one found is recorded and repaired (a placeholder of
/// the expected type, `null` for a missing field so that its type shows) and the body tried again.
/// Problems inside a repaired value are not listed (pydantic reports only the outer one).
fn every_issue<T: DeserializeOwned>(
    value: &Value,
    first: serde_path_to_error::Error<serde_json::Error>,
) -> Vec<ValidationIssue> {
    let mut issues = Vec::new();
    let mut repaired = value.clone();
    let mut placed: Vec<Vec<Value>> = Vec::new();
    let mut error = Some(first);
    while let Some(e) = error.take() {
        let mut loc = vec![json!("body")];
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
                serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
                _ => {}
            }
        }
        let msg = e.into_inner().to_string();
        let inside_placed = |loc: &[Value]| placed.iter().any(|p| loc.starts_with(p));
        let patch = if let Some(field) = msg
            .strip_prefix("missing field `")
            .map(|f| f.trim_end_matches('`'))
        {
            // pydantic's input for a missing field is the object it is missing from.
            let input = value_at(value, &loc[1..]).cloned().unwrap_or(Value::Null);
            loc.push(json!(field));
            if !inside_placed(&loc) {
                issues.push(ValidationIssue::new(
                    "missing",
                    loc.clone(),
                    "Field required",
                    input,
                ));
            }
            Value::Null
        } else {
            let input = value_at(&repaired, &loc[1..])
                .cloned()
                .unwrap_or(Value::Null);
            let issue = describe(&msg, loc.clone(), input);
            let patch = placeholder(&issue.kind);
            if !inside_placed(&loc) {
                issues.push(issue);
            }
            match patch {
                Some(p) => p,
                None => break,
            }
        };
        if issues.len() >= ISSUES_MAX || !set_at(&mut repaired, &loc[1..], patch) {
            break;
        }
        placed.push(loc);
        error = serde_path_to_error::deserialize::<_, T>(&repaired).err();
    }
    let order = field_order::<T>();
    let rank = |issue: &ValidationIssue| {
        let field = issue.loc.get(1).and_then(Value::as_str);
        field
            .and_then(|f| order.iter().position(|o| *o == f))
            .unwrap_or(usize::MAX)
    };
    issues.sort_by_key(|i| rank(i));
    issues
}

/// A value of the type a problem of `kind` expected, to try the body again.
fn placeholder(kind: &str) -> Option<Value> {
    Some(match kind {
        "string_type" => json!(""),
        "bool_type" | "bool_parsing" => json!(false),
        "int_type" | "int_parsing" | "int_from_float" => json!(0),
        "dict_type" | "model_attributes_type" => json!({}),
        "list_type" => json!([]),
        _ => return None,
    })
}

/// Puts `new` at `path` inside `root` (creating an object key); `false` when the path does not exist.
fn set_at(root: &mut Value, path: &[Value], new: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *root = new;
        return true;
    };
    let parent = parents.iter().try_fold(root, |v, seg| match seg {
        Value::String(k) => v.get_mut(k.as_str()),
        Value::Number(i) => v.get_mut(i.as_u64()? as usize),
        _ => None,
    });
    match (parent, last) {
        (Some(Value::Object(map)), Value::String(k)) => {
            map.insert(k.clone(), new);
            true
        }
        (Some(Value::Array(items)), Value::Number(i)) => {
            match i.as_u64().and_then(|i| items.get_mut(i as usize)) {
                Some(slot) => {
                    *slot = new;
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// The fields of struct `T` in declaration order (the list serde hands a deserialiser), or none.
fn field_order<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Deserializer, Visitor};
    #[derive(Debug)]
    struct Found(Option<&'static [&'static str]>);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field order probe")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Found(None)
        }
    }
    struct Probe;
    impl<'de> Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(None))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(Some(fields)))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(Some(fields))) => fields,
        _ => &[],
    }
}

fn json_error_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in bytes.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1);
        }
        offset += l.len() + 1;
    }
    bytes.len()
}

fn value_at<'a>(root: &'a Value, path: &[Value]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        Value::String(k) => v.get(k.as_str()),
        Value::Number(i) => v.get(i.as_u64()? as usize),
        _ => None,
    })
}

/// Turns a serde message into pydantic's type and wording.
fn describe(msg: &str, mut loc: Vec<Value>, input: Value) -> ValidationIssue {
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        loc.push(json!(field));
        return ValidationIssue::new("missing", loc, "Field required", input);
    }
    let expected = msg.rsplit("expected ").next().unwrap_or("");
    let (kind, text) = if expected.starts_with("a string") {
        ("string_type", "Input should be a valid string")
    } else if expected.starts_with("a boolean") {
        if input.is_string() || input.is_number() {
            (
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
            )
        } else {
            ("bool_type", "Input should be a valid boolean")
        }
    } else if ["i64", "u64", "i32", "u32", "usize", "an integer"]
        .iter()
        .any(|t| expected.starts_with(t))
    {
        match &input {
            Value::String(_) => (
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            ),
            Value::Number(_) => (
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            ),
            _ => ("int_type", "Input should be a valid integer"),
        }
    } else if expected.starts_with("a map") {
        ("dict_type", "Input should be a valid dictionary")
    } else if expected.starts_with("struct") {
        (
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )
    } else if expected.starts_with("a sequence") {
        ("list_type", "Input should be a valid list")
    } else {
        return ValidationIssue::new("value_error", loc, format!("Value error, {msg}"), input);
    };
    ValidationIssue::new(kind, loc, text, input)
}

impl<T: DeserializeOwned + Send + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let parsed = read_and_parse(req, payload, |bytes| parse_json::<T>(bytes).map(Some));
            match parsed.await? {
                Some(t) => Ok(Body(t)),
                None => Err(ApiError::validation(ValidationIssue::new(
                    "missing",
                    vec![json!("body")],
                    "Field required",
                    Value::Null,
                ))),
            }
        })
    }
}

impl<T: DeserializeOwned + Send + 'static> FromRequest for OptionalBody<T> {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let parsed = read_and_parse(req, payload, |bytes| {
                if let Some(t) = typed::<T>(bytes) {
                    return Ok(Some(t));
                }
                let value = parse_value(bytes)?;
                if value.is_null() {
                    return Ok(None);
                }
                from_value(&value).map(Some)
            });
            parsed.await.map(OptionalBody)
        })
    }
}

/// The decoded query string, for parameters parsed one by one.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| Query(q.into_inner()))
            .map_err(|e| {
                ApiError::Status(
                    StatusCode::BAD_REQUEST,
                    format!("Malformed query string: {e}"),
                )
            })
    }

    /// The last value given for `name` (as FastAPI does for scalar parameters).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An optional string parameter; NUL is refused.
    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            Some(v) if v.contains('\0') => {
                Err(ApiError::validation(ValidationIssue::from_invalid(
                    vec![json!("query"), json!(name)],
                    &Invalid::ContainsNul,
                    json!(v),
                )))
            }
            other => Ok(other.map(str::to_string)),
        }
    }

    /// A boolean parameter with pydantic's accepted spellings.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
            "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
            _ => Err(ApiError::validation(ValidationIssue::new(
                "bool_parsing",
                vec![json!("query"), json!(name)],
                "Input should be a valid boolean, unable to interpret input",
                json!(raw),
            ))),
        }
    }

    /// An integer parameter within `min..=max`. Digit strings too large for `i64` saturate, so a huge
    /// page number is simply past the end.
    pub fn integer(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let loc = vec![json!("query"), json!(name)];
        let trimmed = raw.trim();
        let n = match trimmed.parse::<i64>() {
            Ok(n) => n,
            Err(_)
                if !trimmed.is_empty()
                    && trimmed
                        .trim_start_matches(['+', '-'])
                        .bytes()
                        .all(|b| b.is_ascii_digit()) =>
            {
                if trimmed.starts_with('-') {
                    i64::MIN
                } else {
                    i64::MAX
                }
            }
            Err(_) => {
                return Err(ApiError::validation(ValidationIssue::new(
                    "int_parsing",
                    loc,
                    "Input should be a valid integer, unable to parse string as an integer",
                    json!(raw),
                )))
            }
        };
        if n < min {
            return Err(ApiError::validation(
                ValidationIssue::new(
                    "greater_than_equal",
                    loc,
                    format!("Input should be greater than or equal to {min}"),
                    json!(raw),
                )
                .with_ctx(json!({ "ge": min })),
            ));
        }
        if n > max {
            return Err(ApiError::validation(
                ValidationIssue::new(
                    "less_than_equal",
                    loc,
                    format!("Input should be less than or equal to {max}"),
                    json!(raw),
                )
                .with_ctx(json!({ "le": max })),
            ));
        }
        Ok(n)
    }
}

/// Query parameters read into the struct that documents them (its `IntoParams` schema is the
/// spec's): each field is read with [`Query`]'s rules (pydantic's spellings, FastAPI's 422s), in
/// field order, so the first bad parameter is the one reported.
pub trait FromQuery: Sized {
    fn from_query(q: &Query) -> Result<Self, ApiError>;

    /// The request's parameters.
    fn parse(req: &HttpRequest) -> Result<Self, ApiError> {
        Self::from_query(&Query::of(req)?)
    }
}

/// Pagination and order of every `/list` route.
#[derive(IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Whether to reverse the order of results
    #[param(default = false)]
    reverse: Option<bool>,
    /// Page number
    #[param(minimum = 1, default = 1)]
    #[serde(default)]
    page: u64,
    /// Page size
    #[param(minimum = 1, maximum = 100, default = 50)]
    #[serde(default)]
    size: u64,
}

impl FromQuery for ListParams {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(ListParams {
            reverse: Some(q.boolean("reverse", false)?),
            page: q.integer("page", 1, 1, i64::MAX)? as u64,
            size: q.integer("size", i64::from(SIZE_DEFAULT), 1, i64::from(SIZE_MAX))? as u64,
        })
    }
}

impl ListParams {
    /// The page a list route's parameters ask for.
    pub fn page(req: &HttpRequest) -> Result<PageRequest, ApiError> {
        let p = Self::parse(req)?;
        Ok(PageRequest {
            page: p.page,
            size: p.size as u32,
            reverse: p.reverse.unwrap_or(false),
        })
    }
}
