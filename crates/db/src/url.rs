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
            DatabaseUrl::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let creds = &u[s + 3..at];
                    let user = creds.split(':').next().unwrap_or("");
                    format!("postgresql://{user}:***@{}", &u[at + 1..])
                }
                _ => u.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
