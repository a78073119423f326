//! The OpenID provider harness against the real `oidc-provider`: discovery names the
//! endpoints; the password grant gives a JWT access token for the resource with the user's
//! groups and refuses a wrong password or an unknown user; a refresh token gives a new access
//! token; the device flow completes only after the user signs in with the right password;
//! another resource's tokens carry its audience and lifetime.

use stratus_tests::oidc::{claims, Config, Provider, HSM_AUDIENCE};

#[test]
fn password_grant_issues_jwt_access_tokens_with_groups_and_refuses_wrong_passwords() {
    let provider = Provider::start(&Config::standard());
    let issuer = provider.issuer().to_string();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");

    let jwks = provider.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!((keys[0]["kty"].as_str(), keys[0]["alg"].as_str()), (Some("RSA"), Some("RS256")));
    assert!(keys[0].get("d").is_none(), "the JWKS holds a private key: {jwks}");

    let tokens = provider.password_token("developer", "developer-password").unwrap();
    let at = claims(&tokens.access_token);
    assert_eq!(at["iss"], issuer.as_str());
    assert_eq!(at["aud"], HSM_AUDIENCE);
    assert_eq!(at["sub"], "developer");
    assert_eq!(at["preferred_username"], "developer");
    assert_eq!(at["groups"], serde_json::json!(["hsm-developers"]));
    assert_eq!(at["client_id"], "hsm");
    assert!(at["exp"].as_u64().unwrap() > at["iat"].as_u64().unwrap(), "{at}");
    assert_eq!(tokens.expires_in, 600);

    // Refresh: a new access token for the same user.
    let refreshed = provider.refresh(tokens.refresh_token.as_deref().expect("a refresh token")).unwrap();
    assert_ne!(refreshed.access_token, tokens.access_token);
    let at = claims(&refreshed.access_token);
    assert_eq!((at["sub"].as_str(), at["aud"].as_str()), (Some("developer"), Some(HSM_AUDIENCE)));
    assert_eq!(at["groups"], serde_json::json!(["hsm-developers"]));

    for (user, password) in [("developer", "admin-password"), ("developer", ""), ("mallory", "developer-password")] {
        let refused = provider.password_token(user, password).unwrap_err();
        assert!(
            refused["error"] == "invalid_grant" || refused["error"] == "invalid_request",
            "{user}/{password:?}: {refused}"
        );
    }
    let (status, refused) = provider.token_request(&[
        ("grant_type", "password"),
        ("client_id", "somebody-else"),
        ("username", "admin"),
        ("password", "admin-password"),
    ]);
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_client")), "{refused}");
}

#[test]
fn device_flow_completes_only_with_the_users_password() {
    let provider = Provider::start(&Config::standard());

    let authorization = provider.device_authorization("openid offline_access");
    assert!(authorization.verification_uri.starts_with(provider.issuer()), "{authorization:?}");
    let pending = provider.device_token(&authorization.device_code).unwrap_err();
    assert_eq!(pending["error"], "authorization_pending", "{pending}");

    // A wrong password is refused on the login form, and nothing is granted.
    let refused = provider
        .approve_device(&authorization.verification_uri, &authorization.user_code, "viewer", "wrong")
        .unwrap_err();
    assert!(refused.starts_with("401 "), "{refused}");
    let pending = provider.device_token(&authorization.device_code).unwrap_err();
    assert_eq!(pending["error"], "authorization_pending", "{pending}");

    // A fresh code, the right password: tokens for that user.
    let authorization = provider.device_authorization("openid offline_access");
    provider
        .approve_device(&authorization.verification_uri, &authorization.user_code, "viewer", "viewer-password")
        .unwrap();
    let tokens = provider.device_token(&authorization.device_code).unwrap();
    let at = claims(&tokens.access_token);
    assert_eq!((at["sub"].as_str(), at["aud"].as_str()), (Some("viewer"), Some(HSM_AUDIENCE)));
    assert_eq!(at["groups"], serde_json::json!(["hsm-viewers"]));
    assert!(tokens.refresh_token.is_some());
    let id = claims(tokens.id_token.as_deref().expect("an ID token"));
    assert_eq!((id["sub"].as_str(), id["aud"].as_str()), (Some("viewer"), Some("hsm")));

    // A code is good for one sign-in, and a device code for one token request.
    let used =
        provider.approve_device(&authorization.verification_uri, &authorization.user_code, "admin", "admin-password");
    assert!(used.is_err(), "a used code was accepted again");
    let used = provider.device_token(&authorization.device_code).unwrap_err();
    assert_eq!(used["error"], "invalid_grant", "{used}");

    // The whole flow in one call.
    let tokens = provider.device_flow_token("admin", "admin-password").unwrap();
    assert_eq!(claims(&tokens.access_token)["groups"], serde_json::json!(["hsm-admins"]));
}

#[test]
fn other_resources_have_their_own_audience_and_lifetime() {
    let config = Config::standard().resource("https://other.stratus.test", None, None).resource(
        "urn:stratus:short",
        Some(HSM_AUDIENCE),
        Some(1),
    );
    let provider = Provider::start(&config);
    let other = provider.password_token_for("admin", "admin-password", Some("https://other.stratus.test")).unwrap();
    assert_eq!(claims(&other.access_token)["aud"], "https://other.stratus.test");
    let short = provider.password_token_for("admin", "admin-password", Some("urn:stratus:short")).unwrap();
    let at = claims(&short.access_token);
    assert_eq!(at["aud"], HSM_AUDIENCE);
    assert_eq!(at["exp"].as_u64().unwrap() - at["iat"].as_u64().unwrap(), 1, "{at}");
    let unknown = provider.password_token_for("admin", "admin-password", Some("https://unknown.test")).unwrap_err();
    assert_eq!(unknown["error"], "invalid_target", "{unknown}");
}
