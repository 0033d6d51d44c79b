//! The emulators' side of HTTP digest auth (RFC 7616), as Shelly Gen2 devices and HikVision
//! cameras check it.

use actix_web::HttpRequest;

/// Whether `req` carries a digest `Authorization` for user `admin` with `password`, answering
/// `nonce` (and `realm`, when given) for this very request URI and method.
pub fn valid(req: &HttpRequest, password: &str, realm: Option<&str>, nonce: &str) -> bool {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned());
    digest_auth::AuthorizationHeader::parse(header).is_ok_and(|claimed| {
        let mut expected = claimed.clone();
        expected.digest(&digest_auth::AuthContext::new_with_method(
            "admin",
            password,
            &claimed.uri,
            None::<&[u8]>,
            digest_auth::HttpMethod::from(req.method().as_str().to_owned()),
        ));
        claimed.username == "admin"
            && realm.is_none_or(|r| claimed.realm == r)
            && claimed.nonce == nonce
            && claimed.uri == uri
            && expected.response == claimed.response
    })
}
