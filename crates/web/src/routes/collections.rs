use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(_cfg: &mut ServiceConfig) {
    // Documents live under `/{collection_id}/documents` (see `super::documents`).
}
