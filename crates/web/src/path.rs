//! One spelling per request path, decided before routing.
//!
//! actix routes on the path with percent-escapes decoded (all but `%2F`, `%25` and `%2B`), and every
//! handler's `Path` decodes captured segments fully; authorisation reads the same captures. What is
//! left to settle is the shape of the path: runs of `/` become one `/`, a trailing `/` is dropped
//! (except under `/docs/`, the Swagger UI), and a `.` or `..` segment, in any spelling, or a NUL
//! character matches nothing.

/// What a raw request path becomes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Spelling {
    /// The path is already in its one spelling.
    Canonical,
    /// Route this path instead (same query).
    Rewrite(String),
    /// Matches no route: answer 404.
    NotFound,
}

/// The one spelling of `raw` (a request's path, still percent-encoded).
pub(crate) fn normalize(raw: &str) -> Spelling {
    if raw.contains('\0') || raw.contains("%00") {
        return Spelling::NotFound;
    }
    let segments: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| is_dot_segment(s)) {
        return Spelling::NotFound;
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    let docs = segments
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("docs"));
    if path.is_empty() || (docs && raw.ends_with('/')) {
        path.push('/');
    }
    if path == raw {
        Spelling::Canonical
    } else {
        Spelling::Rewrite(path)
    }
}

/// `.` or `..`, with the dots written plainly or as `%2E`/`%2e`.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment;
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("%2e") {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    (1..=2).contains(&dots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(s: &str) -> Spelling {
        Spelling::Rewrite(s.into())
    }

    #[test]
    fn slashes_merge_and_trailing_slashes_go() {
        assert_eq!(normalize("/v1/apps/list"), Spelling::Canonical);
        assert_eq!(normalize("/"), Spelling::Canonical);
        assert_eq!(normalize("/v1/apps/list/"), rewrite("/v1/apps/list"));
        assert_eq!(normalize("//v1//apps///list//"), rewrite("/v1/apps/list"));
        assert_eq!(normalize("//"), rewrite("/"));
        assert_eq!(normalize("/docs/"), Spelling::Canonical);
        assert_eq!(normalize("/docs//"), rewrite("/docs/"));
        assert_eq!(normalize("/docs"), Spelling::Canonical);
        assert_eq!(normalize("/docs/index.css"), Spelling::Canonical);
        assert_eq!(normalize("/v1/app%73/list"), Spelling::Canonical);
    }

    #[test]
    fn dot_segments_and_nul_match_nothing() {
        for path in [
            "/v1/apps/./list",
            "/v1/apps/x/../list",
            "/v1/apps/%2e/list",
            "/v1/apps/%2E%2e/list",
            "/v1/apps/.%2E",
            "/v1/apps/..",
            "/v1/apps/a%00b",
            "/v1/apps/a\0b",
        ] {
            assert_eq!(normalize(path), Spelling::NotFound, "{path}");
        }
        for path in [
            "/v1/apps/.x",
            "/v1/apps/...",
            "/v1/apps/%2e%2e%2e",
            "/v1/apps/a.b",
        ] {
            assert_eq!(normalize(path), Spelling::Canonical, "{path}");
        }
    }
}
