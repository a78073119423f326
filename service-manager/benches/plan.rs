//! Planning speed: `cargo bench -p service-manager --bench plan` prints
//! - the time to plan hcf (SDL + IDL + resolved parameters → typed objects; target < 2 ms),
//! - the same plus rendering the redacted YAML,
//! - preparing hcf: reading and validating its SDL and resolving its parameters (passwords,
//!   a CA, three certificates, an SSH key), new and with stored values,
//! - planning 1,000 mysql instances end to end (read SDL, resolve, plan each) and planner only.
//!
//! Figures are medians of repeated runs; no assertion is made here (machines are noisy).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sdl::catalog::Catalog;
use sdl::idl::IdlParameter;
use sdl::resolve::Stored;
use sdl::Idl;
use service_manager::output::plan_yaml;
use service_manager::request::{prepare, InstanceRequest, Prepared};
use service_manager::ClusterProfile;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    // One warm-up run.
    black_box(f());
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn request(service_id: &str, instance_id: &str, params: &[(&str, &str)]) -> InstanceRequest {
    InstanceRequest {
        service_id: service_id.into(),
        idl: Idl {
            parameters: params
                .iter()
                .map(|(n, v)| IdlParameter { name: n.to_string(), value: v.to_string() })
                .collect(),
            ..Idl::default()
        },
        idl_source: "bench".into(),
        instance_id: Some(instance_id.into()),
        ..InstanceRequest::default()
    }
}

fn main() {
    let catalog = Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")).unwrap();
    let profile = ClusterProfile::default();
    let mut rng = StdRng::seed_from_u64(1);

    let hcf_request = request("stackato.hpe.hcf", "hcf", &[("DOMAIN", "cf.example.com")]);
    let hcf: Prepared = prepare(&catalog, &hcf_request, &Stored::default(), &profile, &mut rng).unwrap();
    let objects = hcf.plan(&profile).unwrap().objects().count();

    let plan_hcf = time(500, || hcf.plan(&profile).unwrap());
    let plan_and_render_hcf = time(200, || plan_yaml(&hcf.plan(&profile).unwrap()));
    let resolve_hcf = time(20, || prepare(&catalog, &hcf_request, &Stored::default(), &profile, &mut rng).unwrap());
    let stored = hcf.resolved.to_stored();
    let resolve_hcf_stored = time(100, || prepare(&catalog, &hcf_request, &stored, &profile, &mut rng).unwrap());

    let mysql_requests: Vec<InstanceRequest> =
        (0..1000).map(|i| request("stackato.hpe.mysql", &format!("db-{i}"), &[])).collect();
    let thousand_mysql = time(5, || {
        for r in &mysql_requests {
            black_box(prepare(&catalog, r, &Stored::default(), &profile, &mut rng).unwrap().plan(&profile).unwrap());
        }
    });
    let mysql = prepare(&catalog, &mysql_requests[0], &Stored::default(), &profile, &mut rng).unwrap();
    let thousand_mysql_plans_only = time(5, || {
        for _ in 0..1000 {
            black_box(mysql.plan(&profile).unwrap());
        }
    });

    println!("plan hcf ({objects} objects):                         {:>10.3} ms", plan_hcf.as_secs_f64() * 1e3);
    println!("plan + render YAML hcf:                         {:>10.3} ms", plan_and_render_hcf.as_secs_f64() * 1e3);
    println!(
        "prepare hcf, new instance (read+validate SDL, resolve: CA, 3 certs, SSH key): {:>10.3} ms",
        resolve_hcf.as_secs_f64() * 1e3
    );
    println!("prepare hcf, stored values (an upgrade):        {:>10.3} ms", resolve_hcf_stored.as_secs_f64() * 1e3);
    println!(
        "1,000 mysql instances (read+validate SDL, resolve, plan each): {:>10.1} ms",
        thousand_mysql.as_secs_f64() * 1e3
    );
    println!(
        "1,000 mysql plans (planner only):               {:>10.1} ms",
        thousand_mysql_plans_only.as_secs_f64() * 1e3
    );
}
