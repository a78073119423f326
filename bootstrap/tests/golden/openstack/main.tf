# Rendered by stratus bootstrap for cluster "demo" on OpenStack. Do not edit: re-run bootstrap.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.0"
    }
  }
}

variable "openstack_password" {
  type      = string
  sensitive = true
}

provider "openstack" {
  auth_url  = "https://keystone.example.com:5000/v3"
  user_name = "operator"
  password  = var.openstack_password
  region    = "RegionOne"

  domain_name = "default"

  tenant_name = "stratus"
}

locals {
  cluster = "demo"
  zones   = ["az1", "az2", "az3"]
  tags    = ["stratus-cluster=${local.cluster}"]
}

resource "openstack_networking_secgroup_v2" "cluster" {
  name        = "${local.cluster}-cluster"
  description = "Stratus cluster ${local.cluster}: SSH from the jumpbox, the API from the load balancer, everything inside"
  tags        = local.tags
}

resource "openstack_networking_secgroup_rule_v2" "ssh" {
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 22
  port_range_max    = 22
  remote_ip_prefix  = "192.0.2.4/32"
  security_group_id = openstack_networking_secgroup_v2.cluster.id
}

resource "openstack_networking_secgroup_rule_v2" "api" {
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 6443
  port_range_max    = 6443
  remote_ip_prefix  = "192.0.2.0/24"
  security_group_id = openstack_networking_secgroup_v2.cluster.id
}

resource "openstack_networking_secgroup_rule_v2" "internal" {
  direction         = "ingress"
  ethertype         = "IPv4"
  remote_group_id   = openstack_networking_secgroup_v2.cluster.id
  security_group_id = openstack_networking_secgroup_v2.cluster.id
}

resource "openstack_compute_servergroup_v2" "role" {
  for_each = toset(["master", "node", "gluster"])
  name     = "${local.cluster}-${each.key}"
  policies = ["soft-anti-affinity"]
}

resource "openstack_compute_instance_v2" "master" {
  count             = 1
  name              = "${local.cluster}-master-${count.index}"
  user_data         = sensitive(file("${path.module}/cloud-init/master-${count.index}.yaml"))
  image_id          = "a61d07fb-4d95-4d7b-b87d-e77bfd37395e"
  flavor_id         = "3"
  key_pair          = "stratus-key"
  availability_zone = element(local.zones, count.index)
  security_groups   = [openstack_networking_secgroup_v2.cluster.name]
  tags              = local.tags

  network {
    uuid = "a94493c3-2b5d-47a8-9f1c-1ba51b702ee9"
  }

  scheduler_hints {
    group = openstack_compute_servergroup_v2.role["master"].id
  }
}

resource "openstack_compute_instance_v2" "node" {
  count             = 3
  name              = "${local.cluster}-node-${count.index}"
  user_data         = sensitive(file("${path.module}/cloud-init/node-${count.index}.yaml"))
  image_id          = "a61d07fb-4d95-4d7b-b87d-e77bfd37395e"
  flavor_id         = "5"
  key_pair          = "stratus-key"
  availability_zone = element(local.zones, count.index)
  security_groups   = [openstack_networking_secgroup_v2.cluster.name]
  tags              = local.tags

  network {
    uuid = "a94493c3-2b5d-47a8-9f1c-1ba51b702ee9"
  }

  scheduler_hints {
    group = openstack_compute_servergroup_v2.role["node"].id
  }
}

resource "openstack_compute_instance_v2" "gluster" {
  count             = 2
  name              = "${local.cluster}-gluster-${count.index}"
  user_data         = sensitive(file("${path.module}/cloud-init/gluster-${count.index}.yaml"))
  image_id          = "a61d07fb-4d95-4d7b-b87d-e77bfd37395e"
  flavor_id         = "3"
  key_pair          = "stratus-key"
  availability_zone = element(local.zones, count.index)
  security_groups   = [openstack_networking_secgroup_v2.cluster.name]
  tags              = local.tags

  network {
    uuid = "a94493c3-2b5d-47a8-9f1c-1ba51b702ee9"
  }

  scheduler_hints {
    group = openstack_compute_servergroup_v2.role["gluster"].id
  }
}

resource "openstack_blockstorage_volume_v3" "etcd" {
  count             = 1
  name              = "${local.cluster}-etcd-${count.index}"
  size              = 10
  availability_zone = element(local.zones, count.index)
  metadata = {
    stratus-cluster = local.cluster
  }
}

resource "openstack_compute_volume_attach_v2" "etcd" {
  count       = 1
  instance_id = openstack_compute_instance_v2.master[count.index].id
  volume_id   = openstack_blockstorage_volume_v3.etcd[count.index].id
}

resource "openstack_blockstorage_volume_v3" "brick" {
  count             = 2
  name              = "${local.cluster}-brick-${count.index}"
  size              = 100
  availability_zone = element(local.zones, count.index)
  metadata = {
    stratus-cluster = local.cluster
  }
}

resource "openstack_compute_volume_attach_v2" "brick" {
  count       = 2
  instance_id = openstack_compute_instance_v2.gluster[count.index].id
  volume_id   = openstack_blockstorage_volume_v3.brick[count.index].id
}

resource "openstack_networking_floatingip_v2" "master" {
  count = 1
  pool  = "ext-net"
  tags  = local.tags
}

resource "openstack_compute_floatingip_associate_v2" "master" {
  count       = 1
  floating_ip = openstack_networking_floatingip_v2.master[count.index].address
  instance_id = openstack_compute_instance_v2.master[count.index].id
}

resource "openstack_lb_loadbalancer_v2" "api" {
  name          = "${local.cluster}-api"
  vip_subnet_id = "76b97588-bf91-46c0-bc0b-0f491404dfc8"
  tags          = local.tags
}

resource "openstack_lb_listener_v2" "api" {
  name            = "${local.cluster}-api"
  protocol        = "TCP"
  protocol_port   = 6443
  loadbalancer_id = openstack_lb_loadbalancer_v2.api.id
  allowed_cidrs   = ["192.0.2.0/24"]
}

resource "openstack_lb_pool_v2" "api" {
  name        = "${local.cluster}-api"
  protocol    = "TCP"
  lb_method   = "ROUND_ROBIN"
  listener_id = openstack_lb_listener_v2.api.id
}

resource "openstack_lb_member_v2" "api" {
  count         = 1
  pool_id       = openstack_lb_pool_v2.api.id
  address       = openstack_compute_instance_v2.master[count.index].access_ip_v4
  protocol_port = 6443
  subnet_id     = "76b97588-bf91-46c0-bc0b-0f491404dfc8"
}

resource "openstack_lb_monitor_v2" "api" {
  pool_id     = openstack_lb_pool_v2.api.id
  type        = "TCP"
  delay       = 5
  timeout     = 3
  max_retries = 3
}

output "api_address" {
  value = openstack_lb_loadbalancer_v2.api.vip_address
}

output "master_addresses" {
  value = openstack_compute_instance_v2.master[*].access_ip_v4
}

output "master_floating_ips" {
  value = openstack_networking_floatingip_v2.master[*].address
}

output "node_addresses" {
  value = openstack_compute_instance_v2.node[*].access_ip_v4
}

output "gluster_addresses" {
  value = openstack_compute_instance_v2.gluster[*].access_ip_v4
}
