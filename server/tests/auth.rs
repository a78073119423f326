//! Authentication and authorisation of the real `hsm-server` binary against a real OpenID
//! provider (npm `oidc-provider`, `stratus_tests::oidc`): every route × every credential —
//! none, a forged signature, a token signed by another key for the same issuer, an HMAC token
//! keyed with the issuer's public key, `alg: none`, an expired token, a token for another
//! audience, a valid token without a role, viewer, developer, admin — answers 401, 403 or
//! passes to the handler as the roles say. The server's cluster is a closed port: a request
//! that passes authentication reaches the handler, whose answer (200 for the catalog, 503
//! `cluster_unavailable` for instances and their writes) is anything but 401/403. The audit log names users, verbs and instances and holds no token or password.
//! Also: key rotation at the issuer and the rate limit on fetching its keys, verified tokens
//! remembered only until their expiry, an issuer on HTTPS
//! trusted through `--oidc-ca-file` only, groups from flags, refusing to start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use stratus_tests::oidc::{claims, Config, Provider, HSM_AUDIENCE};

/// A resource of the provider whose tokens are for the server's audience but live 1 s.
const SHORT_LIVED: &str = "urn:stratus:short-lived";
/// A resource with another audience.
const OTHER_AUDIENCE: &str = "https://other.stratus.test";

/// An `hsm-server` with authentication whose cluster is a closed port (its kubeconfig in a
/// folder of its own, removed after the process is stopped).
struct Server {
    process: common::Server,
    _dir: tempfile::TempDir,
}

/// An answer: status, head (lower-case) and JSON body.
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Server {
    /// Starts the server with `--oidc-issuer issuer`, its cluster a closed port (one attempt
    /// per call: a request that reaches the cluster is a 503 at once) and the flags `extra`.
    fn start(issuer: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = stratus_tests::process::dead_kubeconfig(dir.path());
        let mut args = vec!["--request-timeout", "5s", "--oidc-leeway", "0s", "--cluster-attempts", "1"];
        args.extend(["--oidc-issuer", issuer, "--oidc-audience", HSM_AUDIENCE]);
        args.extend(extra);
        let process =
            common::Server::spawn(&kubeconfig, dir.path(), "hsm-server", &args, &[("HSM_LOG", "hsm_server=info")]);
        Server { process, _dir: dir }
    }

    fn log(&self) -> String {
        self.process.log()
    }

    /// `method path` with an optional bearer token and JSON body.
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let address = &self.process.address;
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body:?}"));
        Answer { status, head: head.to_ascii_lowercase(), body }
    }
}

/// A JWT's three parts.
fn parts(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_string);
    (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap())
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn header(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts(token).0).unwrap()).unwrap()
}

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 401 with `WWW-Authenticate: Bearer`.
    Unauthenticated,
    /// Read routes pass; writes are 403.
    Viewer,
    /// Everything passes.
    Developer,
    /// Every protected route is 403.
    NoRole,
}

/// One route of the matrix: method, path, body, and the status the handler answers once
/// authentication passes (`None`: only "not 401/403" is asserted).
struct Route {
    method: &'static str,
    path: String,
    body: Option<Value>,
    handler_status: Option<u16>,
}

fn route(method: &'static str, path: &str, body: Option<Value>, handler_status: Option<u16>) -> Route {
    Route { method, path: path.to_string(), body, handler_status }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn every_route_answers_by_token_and_role() {
    let config =
        Config::standard().resource(OTHER_AUDIENCE, None, None).resource(SHORT_LIVED, Some(HSM_AUDIENCE), Some(1));
    let provider = Provider::start(&config);
    // Another provider that claims to be the same issuer, with keys of its own.
    let impostor = Provider::start(&Config::standard().issuer(provider.issuer()));
    let server = Server::start(provider.issuer(), &[]);

    // Discovery: /v1/info needs no token and names the issuer, client and audience.
    let info = server.send("GET", "/v1/info", None, None);
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["auth"], json!({"issuer": provider.issuer(), "client_id": "hsm", "audience": HSM_AUDIENCE}));

    let admin = provider.access_token("admin");
    let developer = provider.access_token("developer");
    // The viewer signs in the way `hsm login` does: the device flow.
    let viewer = provider.device_flow_token("viewer", "viewer-password").unwrap().access_token;
    let nobody = provider.access_token("nobody");
    let wrong_audience =
        provider.password_token_for("admin", "admin-password", Some(OTHER_AUDIENCE)).unwrap().access_token;
    assert_eq!(claims(&wrong_audience)["aud"], OTHER_AUDIENCE);
    let expired = provider.password_token_for("admin", "admin-password", Some(SHORT_LIVED)).unwrap().access_token;
    let other_key = impostor.access_token("admin");
    assert_eq!(claims(&other_key)["iss"], provider.issuer());
    assert_ne!(header(&other_key)["kid"], header(&admin)["kid"]);

    // The viewer's signature on the admin's claims with the groups changed.
    let (head, _, viewer_signature) = parts(&viewer);
    let mut forged_claims = claims(&viewer);
    forged_claims["groups"] = json!(["hsm-admins"]);
    let forged = format!("{head}.{}.{viewer_signature}", encode(&forged_claims));
    // Unsigned.
    let admin_claims = claims(&admin);
    let unsigned = format!("{}.{}.", encode(&json!({"alg": "none", "typ": "at+jwt"})), encode(&admin_claims));
    let unsigned_with_kid =
        format!("{}.{}.", encode(&json!({"alg": "none", "kid": header(&admin)["kid"]})), encode(&admin_claims));
    // HS256 keyed with the issuer's public key (the key confusion attack).
    let jwks = provider.jwks();
    let public_key = jwks["keys"][0]["n"].as_str().unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = header(&admin)["kid"].as_str().map(str::to_string);
    let hmac =
        jsonwebtoken::encode(&hs_header, &admin_claims, &jsonwebtoken::EncodingKey::from_secret(public_key.as_bytes()))
            .unwrap();

    // The short-lived token expires (the server allows no leeway here).
    let expires = claims(&expired)["exp"].as_u64().unwrap();
    while now() <= expires {
        std::thread::sleep(Duration::from_millis(200));
    }

    let credentials: Vec<(&str, Option<&str>, Expect)> = vec![
        ("no token", None, Expect::Unauthenticated),
        ("not a JWT", Some("not-a-jwt"), Expect::Unauthenticated),
        ("forged signature", Some(&forged), Expect::Unauthenticated),
        ("another key, same issuer", Some(&other_key), Expect::Unauthenticated),
        ("HS256 with the public key", Some(&hmac), Expect::Unauthenticated),
        ("alg none", Some(&unsigned), Expect::Unauthenticated),
        ("alg none with a kid", Some(&unsigned_with_kid), Expect::Unauthenticated),
        ("expired", Some(&expired), Expect::Unauthenticated),
        ("wrong audience", Some(&wrong_audience), Expect::Unauthenticated),
        ("no role", Some(&nobody), Expect::NoRole),
        ("viewer", Some(&viewer), Expect::Viewer),
        ("developer", Some(&developer), Expect::Developer),
        ("admin", Some(&admin), Expect::Developer),
    ];

    // Real catalog values for the catalog routes.
    let services = server.send("GET", "/v1/services", Some(&admin), None);
    assert_eq!(services.status, 200, "{}", services.body);
    let redis = services.body.as_array().unwrap().iter().find(|s| s["id"] == "stackato.hpe.redis").unwrap().clone();
    let pv = redis["product_versions"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
    let version =
        server.send("GET", &format!("/v1/services/stackato.hpe.redis/product_versions/{pv}"), Some(&admin), None);
    let sv = version.body["sdl_versions"][0]["sdl_version"].as_str().unwrap().to_string();

    let create = json!({"service_id": "stackato.hpe.redis", "instance_id": "auth-db"});
    let routes = vec![
        route("GET", "/v1/services", None, Some(200)),
        route("GET", "/v1/services/stackato.hpe.redis", None, Some(200)),
        route("GET", &format!("/v1/services/stackato.hpe.redis/product_versions/{pv}"), None, Some(200)),
        route(
            "GET",
            &format!("/v1/services/stackato.hpe.redis/product_versions/{pv}/sdl_versions/{sv}"),
            None,
            Some(200),
        ),
        route("GET", "/v1/services/stackato.hpe.nothing", None, Some(404)),
        // The cluster is a closed port: the handler answers 503.
        route("GET", "/v1/instances", None, Some(503)),
        route("GET", "/v1/instances/auth-db", None, Some(503)),
        // The writes and the event stream: past authentication (decided from the method and
        // path alone) the handler cannot reach the cluster.
        route("GET", "/v1/instances/auth-db/events", None, Some(503)),
        route("POST", "/v1/instances", Some(create), Some(503)),
        route("PATCH", "/v1/instances/auth-db", Some(json!({"parameters": {}})), Some(503)),
        route("DELETE", "/v1/instances/auth-db", None, Some(503)),
        // Bindings: reads are a viewer's, but a binding's credentials need a developer.
        route("GET", "/v1/instances/auth-db/bindings", None, Some(503)),
        route("POST", "/v1/instances/auth-db/bindings", Some(json!({"binding_id": "b1"})), Some(503)),
        route("GET", "/v1/instances/auth-db/bindings/b1", None, Some(503)),
        route("DELETE", "/v1/instances/auth-db/bindings/b1", None, Some(503)),
        route("GET", "/v1/instances/auth-db/bindings/b1/credentials", None, Some(503)),
        // Unknown routes need a token too (who may not read cannot probe them).
        route("GET", "/v1/nothing", None, Some(404)),
    ];

    let mut failures = Vec::new();
    for route in &routes {
        // What a viewer may not do: writes, and reading a binding's credentials.
        let write = route.method != "GET" || route.path.ends_with("/credentials");
        for (name, token, expect) in &credentials {
            let answer = server.send(route.method, &route.path, *token, route.body.as_ref());
            let what = format!("{} {} with {name}: {} {}", route.method, route.path, answer.status, answer.body);
            let passes = match expect {
                Expect::Unauthenticated => {
                    if answer.status != 401 || !answer.head.contains("\r\nwww-authenticate: bearer realm=\"hsm\"") {
                        failures.push(format!("{what}: expected 401 with WWW-Authenticate: Bearer"));
                    } else if token.is_some() && !answer.head.contains("error=\"invalid_token\"") {
                        failures.push(format!("{what}: expected error=\"invalid_token\""));
                    }
                    false
                }
                Expect::NoRole => false,
                Expect::Viewer => !write,
                Expect::Developer => true,
            };
            if *expect == Expect::Unauthenticated {
                continue;
            }
            if passes {
                match route.handler_status {
                    Some(status) if answer.status != status => failures.push(format!("{what}: expected {status}")),
                    None if answer.status == 401 || answer.status == 403 => {
                        failures.push(format!("{what}: expected to pass authentication"))
                    }
                    _ => {}
                }
            } else {
                let needed = if write { "developer" } else { "viewer" };
                let message = answer.body["message"].as_str().unwrap_or_default();
                if answer.status != 403
                    || answer.body["code"] != "forbidden"
                    || !message.starts_with(&format!("this needs the role {needed}"))
                {
                    failures.push(format!("{what}: expected 403 forbidden naming the role {needed}"));
                }
            }
        }
    }
    // The public routes need no token, and a bad one does not matter there.
    for path in ["/v1/info", "/v1/openapi.json", "/healthz"] {
        for token in [None, Some("not-a-jwt"), Some(nobody.as_str())] {
            let answer = server.send("GET", path, token, None);
            if answer.status != 200 {
                failures.push(format!("GET {path} with {token:?}: {} {}", answer.status, answer.body));
            }
        }
    }
    let ready = server.send("GET", "/readyz", None, None);
    assert_eq!((ready.status, ready.body["code"].as_str()), (503, Some("not_ready")), "{}", ready.body);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        server.log()
    );

    // The error shape and the challenge's details.
    let expired_answer = server.send("GET", "/v1/services", Some(&expired), None);
    assert_eq!(expired_answer.body["code"], "invalid_token");
    assert!(expired_answer.head.contains("error_description=\"the token has expired\""), "{}", expired_answer.head);
    let audience_answer = server.send("GET", "/v1/services", Some(&wrong_audience), None);
    assert!(audience_answer.body["message"].as_str().unwrap().starts_with("the token is for another audience"));
    let unsigned_answer = server.send("GET", "/v1/services", Some(&unsigned), None);
    assert_eq!(unsigned_answer.body["message"], "the token is unsigned (alg none); sign in again (hsm login)");
    let missing = server.send("GET", "/v1/services", None, None);
    assert_eq!((missing.body["code"].as_str(), missing.body["status"].as_u64()), (Some("unauthorized"), Some(401)));
    assert!(!missing.head.contains("error="), "RFC 6750: no error code without credentials: {}", missing.head);

    // The audit log: writes and denials with user, verb and instance; no token, no password.
    let log = server.log();
    for expected in [
        "write user=developer verb=create-instance instance=- status=503",
        "write user=admin verb=delete-instance instance=auth-db status=503",
        "denied: missing role user=viewer verb=change-instance instance=auth-db needed=developer role=viewer",
        "denied: missing role user=nobody verb=GET /v1/services instance=- needed=viewer role=none",
        "denied: not authenticated user=- verb=delete-instance instance=auth-db reason=the token has expired",
        "denied: not authenticated user=- verb=GET /v1/instances instance=- reason=no bearer token",
    ] {
        assert!(log.contains(expected), "the audit log has no {expected:?}:\n{log}");
    }
    let reads = log.lines().filter(|l| l.contains("hsm_server::audit") && l.contains("verb=GET /v1/services ")).count();
    assert_eq!(
        reads,
        credentials.iter().filter(|c| c.2 == Expect::Unauthenticated || c.2 == Expect::NoRole).count() + 4,
        "reads are logged only when denied:\n{log}"
    );
    for secret in [&admin, &developer, &viewer, &nobody, &expired, &forged, &other_key, &hmac] {
        let (_, _, signature) = parts(secret);
        assert!(!log.contains(&signature), "a token is in the log");
    }
    for user in &provider.config().users {
        assert!(!log.contains(&user.password), "a password is in the log");
    }
}

#[test]
fn an_issuer_that_cannot_be_reached_is_a_503_not_a_500() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server::start(&format!("http://127.0.0.1:{port}"), &[]);
    let provider = Provider::start(&Config::standard());
    let token = provider.access_token("admin");
    let answer = server.send("GET", "/v1/services", Some(&token), None);
    assert_eq!((answer.status, answer.body["code"].as_str()), (503, Some("issuer_unavailable")), "{}", answer.body);
    // No token is still a 401: nothing to check with the issuer.
    assert_eq!(server.send("GET", "/v1/services", None, None).status, 401);
    assert_eq!(server.send("GET", "/v1/info", None, None).status, 200);
}

#[test]
fn groups_and_roles_follow_the_flags() {
    let config = Config::standard().user("ops", "ops-password", &["platform-operators"]);
    let provider = Provider::start(&config);
    let server = Server::start(
        provider.issuer(),
        &["--admin-group", "platform-operators", "--viewer-group", "staff", "--oidc-client-id", "cli"],
    );
    let info = server.send("GET", "/v1/info", None, None);
    assert_eq!(info.body["auth"]["client_id"], "cli");
    // `nobody` is in `staff`: a viewer now.
    let nobody = provider.access_token("nobody");
    assert_eq!(server.send("GET", "/v1/services", Some(&nobody), None).status, 200);
    let denied = server.send("DELETE", "/v1/instances/x", Some(&nobody), None);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.body["message"].as_str().unwrap().contains("(group hsm-developers or platform-operators)"),
        "{}",
        denied.body
    );
    // `admin` is in hsm-admins, which no longer gives a role.
    let admin = provider.access_token("admin");
    assert_eq!(server.send("GET", "/v1/services", Some(&admin), None).status, 403);
    let ops = provider.access_token("ops");
    assert_ne!(server.send("DELETE", "/v1/instances/x", Some(&ops), None).status, 403);
}

#[test]
fn the_server_refuses_to_start_without_authentication_unless_told() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_hsm-server"))
            .arg("--insecure-http")
            .args(args)
            .env_remove("HSM_TLS_CERT")
            .env_remove("HSM_TLS_KEY")
            .env_remove("HSM_OIDC_ISSUER")
            .env_remove("HSM_OIDC_AUDIENCE")
            .env_remove("HSM_SERVER_LISTEN")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = run(&["--listen", "127.0.0.1:0"]);
    assert!(stderr.starts_with("error: --oidc-issuer and --oidc-audience are required (or --no-auth"), "{stderr}");
    let stderr = run(&["--no-auth", "--listen", "0.0.0.0:0"]);
    assert!(
        stderr.starts_with("error: --listen: 0.0.0.0:0 is not a loopback address; without authentication"),
        "{stderr}"
    );
    let stderr = run(&["--oidc-issuer", "https://idp.example"]);
    assert!(stderr.contains("--oidc-audience"), "{stderr}");
    let stderr = run(&["--oidc-issuer", "idp.example", "--oidc-audience", "a"]);
    assert!(stderr.starts_with("error: --oidc-issuer: \"idp.example\" is not a URL"), "{stderr}");
    let stderr =
        run(&["--oidc-issuer", "https://idp.example", "--oidc-audience", "a", "--oidc-ca-file", "/nonexistent.pem"]);
    assert!(stderr.starts_with("error: --oidc-ca-file: /nonexistent.pem: "), "{stderr}");
    let stderr = run(&["--no-auth", "--oidc-issuer", "https://idp.example", "--oidc-audience", "a"]);
    assert!(stderr.contains("--no-auth"), "{stderr}");
}

#[test]
fn the_document_names_the_bearer_scheme_and_the_401_and_403_answers() {
    let doc = serde_json::to_value(hsm_server::openapi()).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An access token of the OpenID issuer named by GET /v1/info, for its audience"})
    );
    let mut protected = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let public = ["/v1/info", "/v1/openapi.json", "/healthz", "/readyz", "/metrics"].contains(&path.as_str())
                && method == "get";
            if public {
                assert!(operation.get("security").is_none(), "{method} {path}");
                assert!(operation["responses"].get("401").is_none(), "{method} {path}");
            } else {
                protected += 1;
                assert_eq!(operation["security"], json!([{"bearer": []}]), "{method} {path}");
                for status in ["401", "403"] {
                    assert_eq!(
                        operation["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ApiError",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(protected >= 6, "{protected} protected operations");
    let info = &doc["components"]["schemas"]["Info"]["properties"]["auth"];
    assert!(!info.is_null(), "{}", doc["components"]["schemas"]["Info"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_fetched_again_but_not_too_often() {
    use hsm_server::auth::{AuthConfig, Authenticator, Refusal, Role};

    let mut provider = Provider::start(&Config::standard());
    let authenticator = |min_refresh: Duration| {
        let mut config = AuthConfig::new(provider.issuer(), HSM_AUDIENCE);
        config.jwks_min_refresh = min_refresh;
        Authenticator::new(config).unwrap()
    };
    // One that may fetch the key set for every unknown key id, one that may not within an hour.
    let eager = authenticator(Duration::ZERO);
    let patient = authenticator(Duration::from_secs(3600));

    let old = provider.access_token("developer");
    let principal = eager.verify(&old).await.unwrap();
    assert_eq!((principal.subject.as_str(), principal.role), ("developer", Some(Role::Developer)));
    assert_eq!(eager.key_fetches().await, 1);
    assert!(patient.verify(&old).await.is_ok());
    assert_eq!(eager.verify(&old).await.unwrap(), principal);
    assert_eq!(eager.key_fetches().await, 1, "a known key id is not fetched again");

    // New signing keys at the same issuer.
    provider.restart();
    let new = provider.access_token("developer");
    assert_ne!(header(&new)["kid"], header(&old)["kid"]);
    assert_eq!(eager.verify(&new).await.unwrap(), principal);
    assert_eq!(eager.key_fetches().await, 2, "an unknown key id fetches the set again");
    // The old key is gone from the set: its tokens are refused now.
    assert!(matches!(eager.verify(&old).await, Err(Refusal::Invalid(_))));

    // Fetched less than the interval ago: an unknown key id is refused without asking.
    assert_eq!(patient.key_fetches().await, 1);
    for _ in 0..3 {
        assert_eq!(
            patient.verify(&new).await,
            Err(Refusal::Invalid("the token is not signed by a key of the issuer".into()))
        );
    }
    assert_eq!(patient.key_fetches().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_token_stops_at_its_expiry_and_a_forgery_of_it_is_not_remembered() {
    use hsm_server::auth::{AuthConfig, Authenticator, Refusal, Role};

    let config = Config::standard().resource(SHORT_LIVED, Some(HSM_AUDIENCE), Some(2));
    let provider = Provider::start(&config);
    let mut auth_config = AuthConfig::new(provider.issuer(), HSM_AUDIENCE);
    auth_config.leeway = Duration::ZERO;
    let authenticator = Authenticator::new(auth_config).unwrap();

    let token = provider.password_token_for("developer", "developer-password", Some(SHORT_LIVED)).unwrap().access_token;
    let principal = authenticator.verify(&token).await.unwrap();
    assert_eq!(principal.role, Some(Role::Developer));
    assert_eq!(authenticator.remembered(), 1);
    // Answered from memory: the same principal, no further key fetch, nothing more remembered.
    for _ in 0..3 {
        assert_eq!(authenticator.verify(&token).await.unwrap(), principal);
    }
    assert_eq!((authenticator.remembered(), authenticator.key_fetches().await), (1, 1));

    // The same signature over other claims is checked in full and refused, not remembered.
    let (head, _, signature) = parts(&token);
    let mut forged_claims = claims(&token);
    forged_claims["groups"] = json!(["hsm-admins"]);
    let forged = format!("{head}.{}.{signature}", encode(&forged_claims));
    assert!(matches!(authenticator.verify(&forged).await, Err(Refusal::Invalid(_))));
    assert_eq!(authenticator.remembered(), 1);

    // Once past its `exp`, the remembered token is refused like any expired one.
    let expires = claims(&token)["exp"].as_u64().unwrap();
    while now() <= expires {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(authenticator.verify(&token).await, Err(Refusal::Invalid("the token has expired".into())));
}

#[test]
fn an_issuer_on_https_is_trusted_through_the_ca_file_only() {
    let provider = Provider::start_tls(&Config::standard());
    assert!(provider.issuer().starts_with("https://127.0.0.1:"), "{}", provider.issuer());
    let token = provider.access_token("viewer");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("issuer-ca.pem");
    std::fs::write(&ca_file, provider.ca_certificate().unwrap()).unwrap();

    // Without the CA the issuer's certificate is not trusted: the keys cannot be fetched.
    let untrusting = Server::start(provider.issuer(), &[]);
    let answer = untrusting.send("GET", "/v1/services", Some(&token), None);
    assert_eq!((answer.status, answer.body["code"].as_str()), (503, Some("issuer_unavailable")), "{}", answer.body);
    assert!(answer.body["message"].as_str().unwrap().contains("UnknownIssuer"), "{}", answer.body);

    let trusting = Server::start(provider.issuer(), &["--oidc-ca-file", ca_file.to_str().unwrap()]);
    let answer = trusting.send("GET", "/v1/services", Some(&token), None);
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, trusting.log());
    assert_eq!(trusting.send("DELETE", "/v1/instances/x", Some(&token), None).status, 403);
}
