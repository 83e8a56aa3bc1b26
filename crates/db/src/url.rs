//! Which engine a database URL names. The choice is made from the URL alone, never by falling back.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error(
        "unsupported database URL scheme '{0}' (use postgres://..., sqlite://PATH or a file path)"
    )]
    UnsupportedScheme(String),
    #[error("empty database URL")]
    Empty,
    #[error(
        "a PostgreSQL URL must name its database (postgres://user@host:5432/NAME); \
         it would otherwise use the user's default database"
    )]
    NoDatabaseName,
}

impl DatabaseUrl {
    /// Parses `postgres://`, `postgresql://` (also v1.1.0's `postgresql+psycopg://`), `sqlite://PATH`,
    /// `sqlite:PATH` or a plain file path.
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(UrlError::Empty);
        }
        if let Some((scheme, rest)) = raw.split_once("://") {
            let base = scheme.split('+').next().unwrap_or(scheme);
            return match base {
                "postgres" | "postgresql" => {
                    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
                    let database = location.split_once('/').map_or("", |(_, db)| db);
                    let named_in_query = query
                        .split('&')
                        .any(|p| p.strip_prefix("dbname=").is_some_and(|d| !d.is_empty()));
                    if database.is_empty() && !named_in_query {
                        return Err(UrlError::NoDatabaseName);
                    }
                    Ok(DatabaseUrl::Postgres(format!("postgresql://{rest}")))
                }
                "sqlite" if !rest.is_empty() => Ok(DatabaseUrl::Sqlite(PathBuf::from(rest))),
                "sqlite" => Err(UrlError::Empty),
                other => Err(UrlError::UnsupportedScheme(other.to_string())),
            };
        }
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(rest)));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(raw)))
    }

    /// The URL with any password replaced, for logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => {
                let (base, query) = match u.split_once('?') {
                    Some((b, q)) => (b, Some(q)),
                    None => (u.as_str(), None),
                };
                let base = match (base.find("://"), base.rfind('@')) {
                    // `***` stands for a password only where there is one.
                    (Some(s), Some(at)) if at > s => match base[s + 3..at].split_once(':') {
                        Some((user, _)) => format!("postgresql://{user}:***@{}", &base[at + 1..]),
                        None => format!("postgresql://{}", &base[s + 3..]),
                    },
                    _ => base.to_string(),
                };
                match query {
                    None => base,
                    Some(q) => {
                        let params: Vec<String> = q
                            .split('&')
                            .map(|p| match p.split_once('=') {
                                Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                                    format!("{k}=***")
                                }
                                _ => p.to_string(),
                            })
                            .collect();
                        format!("{base}?{}", params.join("&"))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_only_passwords_that_exist() {
        let shown = |u: &str| DatabaseUrl::parse(u).unwrap().redacted();
        assert_eq!(
            shown("postgres://u:secret@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(shown("postgres://nobody@h/db"), "postgresql://nobody@h/db");
        assert_eq!(shown("postgres://h/db"), "postgresql://h/db");
        assert_eq!(
            shown("postgres://u@h/db?sslmode=require&password=secret"),
            "postgresql://u@h/db?sslmode=require&password=***"
        );
    }

    #[test]
    fn picks_the_engine_from_the_url() {
        assert_eq!(
            DatabaseUrl::parse("postgresql+psycopg://u:p@h/db").unwrap(),
            DatabaseUrl::Postgres("postgresql://u:p@h/db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://h/db").unwrap(),
            DatabaseUrl::Postgres("postgresql://h/db".into())
        );
        for unnamed in [
            "postgres://postgres@127.0.0.1:5432",
            "postgres://h:5432/",
            "postgres://h/?sslmode=require",
        ] {
            assert_eq!(DatabaseUrl::parse(unnamed), Err(UrlError::NoDatabaseName));
        }
        assert!(DatabaseUrl::parse("postgres://h/?dbname=x").is_ok());
        assert_eq!(
            DatabaseUrl::parse("postgres://h/db").unwrap(),
            DatabaseUrl::Postgres("postgresql://h/db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("./honcho.db").unwrap(),
            DatabaseUrl::Sqlite("./honcho.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://x.db").unwrap(),
            DatabaseUrl::Sqlite("x.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("mysql://h/db"),
            Err(UrlError::UnsupportedScheme(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("postgres://me:secret@h/db")
                .unwrap()
                .redacted(),
            "postgresql://me:***@h/db"
        );
    }
}
