# Rendered by stratus bootstrap for cluster "demo" on vSphere. Do not edit: re-run bootstrap.
# vSphere has no load-balancer service: the API and LoadBalancer Services get keepalived VIPs
# from 192.0.2.100-192.0.2.120 (VRRP router id 51), served by the nodes.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    vsphere = {
      source  = "hashicorp/vsphere"
      version = "~> 2.0"
    }
  }
}

variable "vsphere_password" {
  type      = string
  sensitive = true
}

provider "vsphere" {
  user                 = "administrator@vsphere.local"
  password             = var.vsphere_password
  vsphere_server       = "vcenter.example.com"
  allow_unverified_ssl = false
}

locals {
  cluster = "demo"
  roles = {
    master  = { count = 1, cpus = 2, memory = 4096, data_disk = 10 }
    node    = { count = 2, cpus = 4, memory = 16384, data_disk = 0 }
    gluster = { count = 2, cpus = 2, memory = 4096, data_disk = 100 }
  }
  machines = merge([
    for role, spec in local.roles : {
      for i in range(spec.count) : "${role}-${i}" => merge(spec, { role = role, index = i })
    }
  ]...)
}

data "vsphere_datacenter" "dc" {
  name = "dc1"
}

data "vsphere_compute_cluster" "cluster" {
  name          = "cluster1"
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_datastore" "store" {
  name          = "datastore1"
  datacenter_id = data.vsphere_datacenter.dc.id
}

data "vsphere_network" "net" {
  name          = "VM Network"
  datacenter_id = data.vsphere_datacenter.dc.id
}

resource "vsphere_tag_category" "stratus" {
  name        = "stratus-${local.cluster}"
  cardinality = "SINGLE"
  associable_types = [
    "VirtualMachine",
  ]
}

resource "vsphere_tag" "cluster" {
  name        = local.cluster
  category_id = vsphere_tag_category.stratus.id
}

resource "vsphere_virtual_machine" "machine" {
  for_each         = local.machines
  name             = "${local.cluster}-${each.key}"
  resource_pool_id = data.vsphere_compute_cluster.cluster.resource_pool_id
  datastore_id     = data.vsphere_datastore.store.id
  num_cpus         = each.value.cpus
  memory           = each.value.memory
  guest_id         = "ubuntu64Guest"
  tags             = [vsphere_tag.cluster.id]
  extra_config = {
    # The cloud-config carries the join token (and on the first master the CA key): sensitive,
    # so no plan or apply output shows it.
    "guestinfo.userdata"          = sensitive(base64encode(file("${path.module}/cloud-init/${each.key}.yaml")))
    "guestinfo.userdata.encoding" = "base64"
  }

  network_interface {
    network_id = data.vsphere_network.net.id
  }

  disk {
    label            = "system"
    attach           = true
    path             = "templates/ubuntu-24.04.vmdk"
    datastore_id     = data.vsphere_datastore.store.id
    thin_provisioned = true
    eagerly_scrub    = false
  }

  dynamic "disk" {
    for_each = each.value.data_disk > 0 ? [each.value.data_disk] : []
    content {
      label            = "data"
      unit_number      = 1
      size             = disk.value
      thin_provisioned = true
      eagerly_scrub    = false
    }
  }
}

output "api_address" {
  value = "192.0.2.100"
}

output "master_addresses" {
  value = [for k, m in vsphere_virtual_machine.machine : m.default_ip_address if local.machines[k].role == "master"]
}

output "node_addresses" {
  value = [for k, m in vsphere_virtual_machine.machine : m.default_ip_address if local.machines[k].role == "node"]
}

output "gluster_addresses" {
  value = [for k, m in vsphere_virtual_machine.machine : m.default_ip_address if local.machines[k].role == "gluster"]
}
