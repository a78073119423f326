"""OpenStack for tests: a real Keystone (PyPI `keystone`, SQLite, fernet tokens, served by
gunicorn) whose service catalog points at small in-memory fakes of Nova, Glance, Neutron,
Cinder and Octavia served here.

The fakes speak the real REST paths and JSON shapes for what Stratus uses (version discovery,
flavors, key pairs, absolute limits, images, networks, subnets, floating IPs, volumes, load
balancers), and check every token with Keystone the way keystonemiddleware does
(`GET /v3/auth/tokens` with the service's own token), so an unauthenticated or expired request
gets a 401 as on a cloud.

Usage: standin.py --work DIR --keystone-port P --services-port Q [--tls-cert F --tls-key F]
With a certificate and key, the fakes serve HTTPS (as a cloud with a private CA would; the
client must be given the CA), Keystone stays on HTTP. Prints one line of JSON (`{"auth_url": ..., "username": ..., ...}`) once everything answers,
then serves until SIGTERM.
"""

import argparse
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from flask import Flask, jsonify, request

ADMIN_PASSWORD = "stand-in-admin-password"
PROJECT = "stratus"
USERNAME = "operator"
PASSWORD = "stand-in-operator-password"

# What the account holds, matching bootstrap/examples/openstack.properties.
IMAGES = [{"id": "a61d07fb-4d95-4d7b-b87d-e77bfd37395e", "name": "debian-12"}]
FLAVORS = [
    {"id": "3", "name": "m1.medium", "vcpus": 2, "ram": 4096, "disk": 40},
    {"id": "5", "name": "m1.xlarge", "vcpus": 8, "ram": 16384, "disk": 160},
]
KEYPAIRS = ["stratus-key"]
NETWORKS = [
    {"id": "a94493c3-2b5d-47a8-9f1c-1ba51b702ee9", "name": "stratus-net", "external": False},
    {"id": "0f5ad1b2-6c3e-4a8f-9d27-5b1f0e6c7a11", "name": "ext-net", "external": True},
]
SUBNETS = [
    {"id": "76b97588-bf91-46c0-bc0b-0f491404dfc8", "name": "stratus-subnet",
     "network_id": "a94493c3-2b5d-47a8-9f1c-1ba51b702ee9", "cidr": "10.0.0.0/24"},
]
LIMITS = {"maxTotalInstances": 10, "maxTotalCores": 40, "maxTotalRAMSize": 102400}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    # Only the stand-in's own readiness check goes to its HTTPS fakes: it need not verify them.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            text = resp.read()
            return resp.status, dict(resp.headers), (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, dict(e.headers), (json.loads(text) if text else None)


def password_token(auth_url, user, password, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    status, headers, reply = http("POST", auth_url + "/auth/tokens", body)
    if status != 201:
        raise RuntimeError(f"Keystone refused {user}: {status} {reply}")
    return headers["X-Subject-Token"], reply["token"]


# ---- Keystone -------------------------------------------------------------------------------

def start_keystone(work, port):
    bin_dir = os.path.dirname(sys.executable)
    config = os.path.join(work, "keystone.conf")
    with open(config, "w") as f:
        f.write(f"""[DEFAULT]
debug = false
[database]
connection = sqlite:///{work}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {work}/fernet-keys
[credential]
key_repository = {work}/credential-keys
[identity]
password_hash_rounds = 4
[cache]
enabled = false
""")
    manage = [os.path.join(bin_dir, "keystone-manage"), "--config-file", config]
    auth_url = f"http://127.0.0.1:{port}/v3"
    for step in (["db_sync"],
                 ["fernet_setup", "--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())],
                 ["credential_setup", "--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())],
                 ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", "RegionOne",
                  "--bootstrap-admin-url", auth_url, "--bootstrap-public-url", auth_url,
                  "--bootstrap-internal-url", auth_url]):
        subprocess.run(manage + step, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # keystone.wsgi.api parses sys.argv with oslo.config: give it a clean one.
    with open(os.path.join(work, "keystone_app.py"), "w") as f:
        f.write("import sys\nsys.argv = sys.argv[:1]\nfrom keystone.wsgi.api import application  # noqa\n")
    env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=config, PYTHONPATH=work)
    keystone = subprocess.Popen(
        [os.path.join(bin_dir, "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
         "--log-level", "warning", "keystone_app:application"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "keystone.log"), "w"))
    deadline = time.time() + 60
    while True:
        try:
            status, _, _ = http("GET", auth_url)
            if status == 200:
                break
        except OSError:
            pass
        if keystone.poll() is not None or time.time() > deadline:
            raise RuntimeError("Keystone did not start; see " + os.path.join(work, "keystone.log"))
        time.sleep(0.2)
    return keystone, auth_url


def register(auth_url, services_url):
    """The project, the operator and the catalog entries of the fakes."""
    token, _ = password_token(auth_url, "admin", ADMIN_PASSWORD, "admin")
    h = {"X-Auth-Token": token}
    _, _, project = http("POST", auth_url + "/projects", {"project": {"name": PROJECT, "domain_id": "default"}}, h)
    _, _, user = http("POST", auth_url + "/users",
                      {"user": {"name": USERNAME, "password": PASSWORD, "domain_id": "default"}}, h)
    _, _, roles = http("GET", auth_url + "/roles?name=member", None, h)
    role = roles["roles"][0]["id"]
    http("PUT", f"{auth_url}/projects/{project['project']['id']}/users/{user['user']['id']}/roles/{role}", None, h)
    for kind, name, path in (("compute", "nova", "/compute/v2.1"), ("image", "glance", "/image"),
                             ("network", "neutron", "/network"), ("block-storage", "cinderv3", "/volume/v3"),
                             ("load-balancer", "octavia", "/load-balancer")):
        _, _, service = http("POST", auth_url + "/services", {"service": {"type": kind, "name": name}}, h)
        for interface in ("public", "internal"):
            http("POST", auth_url + "/endpoints", {"endpoint": {
                "service_id": service["service"]["id"], "interface": interface, "region_id": "RegionOne",
                "url": services_url + path}}, h)
    return project["project"]["id"]


# ---- the fakes --------------------------------------------------------------------------------

def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def page(items):
    """`limit` and `marker` paging, as every OpenStack list call has: after the item with id
    `marker`, at most `limit` items (clients loop until a short page)."""
    items = sorted(items, key=lambda i: i["id"])
    marker = request.args.get("marker")
    if marker:
        ids = [i["id"] for i in items]
        items = items[ids.index(marker) + 1:] if marker in ids else []
    limit = request.args.get("limit")
    return items[:int(limit)] if limit else items


def make_app(auth_url, services_url):
    app = Flask("openstack-fakes")
    lock = threading.Lock()
    state = {"volumes": {}, "loadbalancers": {}, "floatingips": {}}
    service_token = {"value": None}
    valid = {}

    def validate(token):
        if token in valid and valid[token] > time.time():
            return valid[token + ":project"]
        if service_token["value"] is None:
            service_token["value"], _ = password_token(auth_url, "admin", ADMIN_PASSWORD, "admin")
        status, _, reply = http("GET", auth_url + "/auth/tokens", None,
                                {"X-Auth-Token": service_token["value"], "X-Subject-Token": token})
        if status != 200:
            return None
        valid[token] = time.time() + 60
        valid[token + ":project"] = reply["token"].get("project", {}).get("id", "")
        return valid[token + ":project"]

    def fault(code, kind, message):
        return jsonify({kind: {"code": code, "message": message}}), code

    def neutron_fault(code, kind, message):
        return jsonify({"NeutronError": {"type": kind, "message": message, "detail": ""}}), code

    @app.before_request
    def authenticate():
        versions = {"/compute/v2.1", "/compute/v2.1/", "/image", "/image/", "/network", "/network/",
                    "/volume", "/volume/", "/volume/v3", "/volume/v3/", "/load-balancer", "/load-balancer/"}
        if request.path in versions or request.path.startswith("/_stand-in"):
            return None
        token = request.headers.get("X-Auth-Token")
        project = validate(token) if token else None
        if project is None:
            return jsonify({"error": {"code": 401, "title": "Unauthorized",
                                      "message": "The request you have made requires authentication."}}), 401
        request.environ["project_id"] = project
        return None

    # -- version discovery
    def version(id_, path, current=None, minimum=None, many=False):
        doc = {"id": id_, "status": "CURRENT", "updated": "2025-01-01T00:00:00Z",
               "links": [{"rel": "self", "href": services_url + path}]}
        if current:
            doc["version"], doc["min_version"] = current, minimum
        return jsonify({"versions": [doc]} if many else {"version": doc})

    @app.get("/compute/v2.1")
    @app.get("/compute/v2.1/")
    def compute_root():
        return version("v2.1", "/compute/v2.1/", "2.96", "2.1")

    @app.get("/image")
    @app.get("/image/")
    def image_root():
        return version("v2.16", "/image/v2/", many=True)

    @app.get("/network")
    @app.get("/network/")
    def network_root():
        return version("v2.0", "/network/v2.0/", many=True)

    @app.get("/volume")
    @app.get("/volume/")
    @app.get("/volume/v3")
    @app.get("/volume/v3/")
    def volume_root():
        return version("v3.0", "/volume/v3/", "3.70", "3.0", many=True)

    @app.get("/load-balancer")
    @app.get("/load-balancer/")
    def lb_root():
        return version("v2.27", "/load-balancer/v2/", many=True)

    # -- Nova
    def flavor_body(f):
        return {"id": f["id"], "name": f["name"], "vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
                "swap": 0, "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": True,
                "rxtx_factor": 1.0, "description": None, "extra_specs": {},
                "links": [{"rel": "self", "href": f"{services_url}/compute/v2.1/flavors/{f['id']}"}]}

    @app.get("/compute/v2.1/flavors")
    def flavors():
        return jsonify({"flavors": page([{"id": f["id"], "name": f["name"], "links": []} for f in FLAVORS])})

    @app.get("/compute/v2.1/flavors/detail")
    def flavors_detail():
        return jsonify({"flavors": page([flavor_body(f) for f in FLAVORS])})

    @app.get("/compute/v2.1/flavors/<fid>")
    def flavor(fid):
        for f in FLAVORS:
            if f["id"] == fid:
                return jsonify({"flavor": flavor_body(f)})
        return fault(404, "itemNotFound", f"Flavor {fid} could not be found.")

    @app.get("/compute/v2.1/os-keypairs/<name>")
    def keypair(name):
        if name not in KEYPAIRS:
            return fault(404, "itemNotFound", f"Keypair {name} not found for user")
        return jsonify({"keypair": {"name": name, "type": "ssh", "fingerprint": "aa:bb:cc",
                                    "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample stand-in",
                                    "user_id": "u", "id": 1, "created_at": now(), "deleted": False}})

    @app.get("/compute/v2.1/limits")
    def limits():
        absolute = dict(LIMITS, totalInstancesUsed=0, totalCoresUsed=0, totalRAMUsed=0)
        return jsonify({"limits": {"absolute": absolute, "rate": []}})

    # -- Glance
    def image_body(i):
        return {"id": i["id"], "name": i["name"], "status": "active", "visibility": "public",
                "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
                "container_format": "bare", "disk_format": "qcow2", "min_disk": 0, "min_ram": 0,
                "size": 1024, "virtual_size": 2048, "checksum": None, "architecture": "x86_64"}

    @app.get("/image/v2/images/<iid>")
    def image(iid):
        for i in IMAGES:
            if i["id"] == iid:
                return jsonify(image_body(i))
        return "<html><body>404 Not Found: No image found with ID " + iid + "</body></html>", 404

    @app.get("/image/v2/images")
    def images():
        name = request.args.get("name")
        return jsonify({"images": page([image_body(i) for i in IMAGES if name in (None, i["name"])])})

    # -- Neutron
    def network_body(n):
        return {"id": n["id"], "name": n["name"], "admin_state_up": True, "status": "ACTIVE", "shared": False,
                "router:external": n["external"], "subnets": [s["id"] for s in SUBNETS if s["network_id"] == n["id"]],
                "project_id": "", "tenant_id": "", "mtu": 1450, "description": "",
                "availability_zones": ["nova"], "port_security_enabled": True, "is_default": False,
                "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z", "tags": []}

    def subnet_body(s):
        return {"id": s["id"], "name": s["name"], "network_id": s["network_id"], "cidr": s["cidr"],
                "ip_version": 4, "enable_dhcp": True, "gateway_ip": s["cidr"].rsplit(".", 1)[0] + ".1",
                "allocation_pools": [], "dns_nameservers": [], "host_routes": [], "project_id": "",
                "tenant_id": "", "description": "", "ipv6_address_mode": None, "ipv6_ra_mode": None,
                "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z", "tags": []}

    @app.get("/network/v2.0/networks/<nid>")
    def network(nid):
        for n in NETWORKS:
            if n["id"] == nid:
                return jsonify({"network": network_body(n)})
        return neutron_fault(404, "NetworkNotFound", f"Network {nid} could not be found.")

    @app.get("/network/v2.0/networks")
    def networks():
        name = request.args.get("name")
        return jsonify({"networks": page([network_body(n) for n in NETWORKS if name in (None, n["name"])])})

    @app.get("/network/v2.0/subnets/<sid>")
    def subnet(sid):
        for s in SUBNETS:
            if s["id"] == sid:
                return jsonify({"subnet": subnet_body(s)})
        return neutron_fault(404, "SubnetNotFound", f"Subnet {sid} could not be found.")

    @app.get("/network/v2.0/floatingips")
    def floating_ips():
        with lock:
            return jsonify({"floatingips": page(list(state["floatingips"].values()))})

    @app.post("/network/v2.0/floatingips")
    def create_floating_ip():
        body = request.get_json()["floatingip"]
        with lock:
            fid = str(uuid.uuid4())
            number = len(state["floatingips"]) + 10
            state["floatingips"][fid] = {
                "id": fid, "floating_network_id": body["floating_network_id"],
                "floating_ip_address": f"203.0.113.{number}", "fixed_ip_address": None, "port_id": None,
                "router_id": None, "status": "DOWN", "description": body.get("description", ""),
                "project_id": request.environ["project_id"], "tenant_id": request.environ["project_id"],
                "created_at": now(), "updated_at": now(), "tags": [], "dns_domain": "", "dns_name": ""}
            return jsonify({"floatingip": state["floatingips"][fid]}), 201

    @app.get("/network/v2.0/floatingips/<fid>")
    def floating_ip(fid):
        with lock:
            if fid in state["floatingips"]:
                return jsonify({"floatingip": state["floatingips"][fid]})
        return neutron_fault(404, "FloatingIPNotFound", f"Floating IP {fid} could not be found")

    @app.delete("/network/v2.0/floatingips/<fid>")
    def delete_floating_ip(fid):
        with lock:
            if state["floatingips"].pop(fid, None) is None:
                return neutron_fault(404, "FloatingIPNotFound", f"Floating IP {fid} could not be found")
        return "", 204

    # -- Cinder
    @app.get("/volume/v3/volumes/detail")
    @app.get("/volume/v3/volumes")
    def volumes():
        with lock:
            return jsonify({"volumes": page(list(state["volumes"].values()))})

    @app.get("/volume/v3/volumes/<vid>")
    def volume(vid):
        with lock:
            if vid in state["volumes"]:
                return jsonify({"volume": state["volumes"][vid]})
        return fault(404, "itemNotFound", f"Volume {vid} could not be found.")

    @app.post("/volume/v3/volumes")
    def create_volume():
        body = request.get_json()["volume"]
        with lock:
            vid = str(uuid.uuid4())
            state["volumes"][vid] = {
                "id": vid, "name": body.get("name") or "", "size": body["size"], "status": "available",
                "metadata": body.get("metadata") or {}, "availability_zone": "nova", "bootable": "false",
                "encrypted": False, "multiattach": False, "attachments": [], "description": body.get("description"),
                "volume_type": "__DEFAULT__", "snapshot_id": None, "source_volid": None, "user_id": "",
                "os-vol-tenant-attr:tenant_id": request.environ["project_id"], "replication_status": None,
                "consistencygroup_id": None, "created_at": now(), "updated_at": now(), "links": []}
            return jsonify({"volume": state["volumes"][vid]}), 202

    @app.delete("/volume/v3/volumes/<vid>")
    def delete_volume(vid):
        with lock:
            if state["volumes"].pop(vid, None) is None:
                return fault(404, "itemNotFound", f"Volume {vid} could not be found.")
        return "", 202

    # -- Octavia
    @app.get("/load-balancer/v2/lbaas/loadbalancers")
    def loadbalancers():
        with lock:
            return jsonify({"loadbalancers": page(list(state["loadbalancers"].values()))})

    @app.post("/load-balancer/v2/lbaas/loadbalancers")
    def create_loadbalancer():
        body = request.get_json()["loadbalancer"]
        with lock:
            lid = str(uuid.uuid4())
            state["loadbalancers"][lid] = {
                "id": lid, "name": body.get("name", ""), "description": body.get("description", ""),
                "vip_subnet_id": body.get("vip_subnet_id"), "vip_address": "10.0.0.200",
                "provisioning_status": "ACTIVE", "operating_status": "ONLINE", "admin_state_up": True,
                "project_id": request.environ["project_id"], "listeners": [], "pools": [],
                "tags": body.get("tags", []), "provider": "amphora", "created_at": now(), "updated_at": now()}
            return jsonify({"loadbalancer": state["loadbalancers"][lid]}), 201

    @app.delete("/load-balancer/v2/lbaas/loadbalancers/<lid>")
    def delete_loadbalancer(lid):
        with lock:
            lb = state["loadbalancers"].get(lid)
            if lb is None:
                return jsonify({"faultcode": "Client", "faultstring": f"Load Balancer {lid} not found."}), 404
            if lb["listeners"] and request.args.get("cascade") != "true":
                return jsonify({"faultcode": "Client", "faultstring": "Cannot delete Load Balancer "
                                + lid + " - it has children"}), 400
            del state["loadbalancers"][lid]
        return "", 204

    @app.post("/_stand-in/loadbalancers/<lid>/listener")
    def add_listener(lid):
        """What a cloud controller does after creating a balancer: give it a listener."""
        with lock:
            state["loadbalancers"][lid]["listeners"].append({"id": str(uuid.uuid4())})
        return "", 204

    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--keystone-port", type=int, required=True)
    parser.add_argument("--services-port", type=int, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    services_url = f"{'https' if tls else 'http'}://127.0.0.1:{args.services_port}"
    logging.getLogger("werkzeug").setLevel(logging.INFO if os.environ.get("STANDIN_LOG") else logging.ERROR)
    keystone, auth_url = start_keystone(args.work, args.keystone_port)
    signal.signal(signal.SIGTERM, lambda *_: (keystone.terminate(), os._exit(0)))
    try:
        project_id = register(auth_url, services_url)
        app = make_app(auth_url, services_url)
        server = threading.Thread(
            target=lambda: app.run("127.0.0.1", args.services_port, threaded=True, ssl_context=tls), daemon=True)
        server.start()
        deadline = time.time() + 30
        while True:
            try:
                if http("GET", services_url + "/network")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("the fakes did not start")
            time.sleep(0.1)
        print(json.dumps({"auth_url": auth_url, "username": USERNAME, "password": PASSWORD, "project": PROJECT,
                          "project_id": project_id, "domain": "default", "services_url": services_url}),
              flush=True)
        server.join()
    finally:
        keystone.terminate()


if __name__ == "__main__":
    main()
