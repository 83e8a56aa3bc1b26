//! Erasure, an addition to v1.1.0: a user, or one session, and everything stored about it or
//! derived from it, removed for good (`DELETE` of a user; `?erase=true` on a session's `DELETE`).

use super::{run, UserPath};
use crate::auth::{scope, Access};
use crate::error::ApiError;
use actix_web::web::Path;
use actix_web::{delete, HttpResponse};
use honcho_domain::erasure::Erased;

/// Erase a user and everything stored about it
///
/// Removes the user, its sessions (active or not) and their messages and metamessages, its
/// collections and documents (the facts the deriver kept included), the deriver's queue items and
/// leases of its sessions, and every process's in-memory search data about it, in one
/// transaction. Recorded API keys naming the user, its sessions or collections are revoked. This
/// cannot be undone. Accepted with the admin key, the app's key or the user's own key.
#[utoipa::path(
    tag = "erasure",
    params(UserPath),
    responses((status = 204, description = "The user and everything stored about it are erased"))
)]
#[delete("/{user_id}")]
pub async fn erase_user(
    access: Access<scope::AppUser>,
    path: Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let UserPath { app_id, user_id } = path.into_inner();
    let revocations = access.revocations();
    run(access.db(), move |db| {
        let erased = db.erase_user(&app_id, &user_id)?;
        keys_revoked(&erased, &revocations, db);
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// After an erasure that revoked keys: this process refuses them at once.
pub(super) fn keys_revoked(
    erased: &Erased,
    revocations: &crate::auth::Revocations,
    db: &honcho_db::Db,
) {
    if erased.keys > 0 {
        super::keys::refresh_after_revoking(revocations, db);
    }
}
