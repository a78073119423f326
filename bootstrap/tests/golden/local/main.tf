# Rendered by stratus bootstrap for cluster "demo" on existing machines. Do not edit: re-run bootstrap.
# Only Terraform's built-in provider is used: it runs without any plugin download.

terraform {
  required_version = ">= 1.5.0"
}

variable "ssh_private_key_file" {
  type = string
}

locals {
  cluster            = "demo"
  kubernetes_version = "1.33.0"
  ssh_user           = "ubuntu"
  api_address        = "192.0.2.10"
  sudo               = "sudo "
  machine_dir        = "/etc/stratus"
  machines = merge(
    { for i, address in ["192.0.2.10"] : "master-${i}" => { role = "master", address = address } },
    { for i, address in ["192.0.2.11", "192.0.2.12"] : "node-${i}" => { role = "node", address = address } },
    { for i, address in ["192.0.2.21", "192.0.2.22"] : "gluster-${i}" => { role = "gluster", address = address } },
  )
}

# One resource per machine: it prepares the machine for its role over SSH. Changing the
# address, role or Kubernetes version replaces it (and runs the preparation again).
resource "terraform_data" "machine" {
  for_each = local.machines
  triggers_replace = {
    address            = each.value.address
    role               = each.value.role
    kubernetes_version = local.kubernetes_version
  }

  connection {
    type        = "ssh"
    host        = each.value.address
    port        = 22
    user        = local.ssh_user
    private_key = sensitive(file(var.ssh_private_key_file))
    timeout     = "2m"
  }

  # The machine's cloud-config, for its cloud-init (or an operator) to apply. It holds keys, so
  # it travels through a directory only the SSH user can read, named after this resource's
  # random ID: two clusters (or two runs) on one machine never share it. mkdir fails if the
  # name exists, so nobody can lay it out in advance. Such dirs of this user over an hour old
  # were left by a killed run: they go.
  provisioner "remote-exec" {
    inline = [
      "set -eu",
      "find /tmp -maxdepth 1 -name 'stratus-????????-????-????-????-????????????' -user \"$(id -u)\" -mmin +60 -exec rm -rf {} +",
      "mkdir -m 700 /tmp/stratus-${self.id}",
    ]
  }

  provisioner "file" {
    source      = "${path.module}/cloud-init/${each.key}.yaml"
    destination = "/tmp/stratus-${self.id}/cloud-config.yaml"
  }

  # Values travel as file contents, never inside a shell line: no quoting to break.
  provisioner "file" {
    content     = jsonencode({ cluster = local.cluster, role = each.value.role, api = local.api_address })
    destination = "/tmp/stratus-${self.id}/machine.json"
  }

  # One command per line: under `set -e` a failure on the left of `&&` would not stop the script.
  # The only values in these lines are this resource's ID and the machine directory, which
  # bootstrap allows only as an absolute path of letters, digits, '.', '_', '-' and '/'.
  provisioner "remote-exec" {
    inline = [
      "set -eu",
      "${local.sudo}mkdir -p '${local.machine_dir}'",
      "${local.sudo}install -m 600 /tmp/stratus-${self.id}/cloud-config.yaml '${local.machine_dir}/cloud-config.yaml'",
      "${local.sudo}install -m 644 /tmp/stratus-${self.id}/machine.json '${local.machine_dir}/machine.json'",
      "rm -rf /tmp/stratus-${self.id}",
    ]
  }
}

output "api_address" {
  value = local.api_address
}

output "ssh_private_key_file" {
  value = var.ssh_private_key_file
}

output "master_addresses" {
  value = ["192.0.2.10"]
}

output "node_addresses" {
  value = ["192.0.2.11", "192.0.2.12"]
}

output "gluster_addresses" {
  value = ["192.0.2.21", "192.0.2.22"]
}
