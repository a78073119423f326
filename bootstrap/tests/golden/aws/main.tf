# Rendered by stratus bootstrap for cluster "demo" on AWS. Do not edit: re-run bootstrap.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

# Credentials come from the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, set by
# bootstrap from the properties file) or the usual AWS credential chain: never from this file.
provider "aws" {
  region = "us-east-1"

  default_tags {
    tags = {
      "stratus:cluster"                          = local.cluster
      ("kubernetes.io/cluster/${local.cluster}") = "owned"
    }
  }
}

locals {
  cluster         = "demo"
  private_subnets = ["subnet-0b01", "subnet-0b02", "subnet-0b03"]
  public_subnets  = ["subnet-0a01", "subnet-0a02", "subnet-0a03"]
}

resource "aws_security_group" "cluster" {
  name        = "${local.cluster}-cluster"
  description = "Stratus cluster ${local.cluster}"
  vpc_id      = "vpc-0a1b2c3d"
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  security_group_id = aws_security_group.cluster.id
  cidr_ipv4         = "192.0.2.4/32"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  security_group_id = aws_security_group.cluster.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 6443
  to_port           = 6443
}

resource "aws_vpc_security_group_ingress_rule" "internal" {
  security_group_id            = aws_security_group.cluster.id
  referenced_security_group_id = aws_security_group.cluster.id
  ip_protocol                  = "-1"
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.cluster.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_instance" "master" {
  count                  = 3
  ami                    = "ami-0abcdef1234567890"
  instance_type          = "m5.large"
  user_data              = sensitive(file("${path.module}/cloud-init/master-${count.index}.yaml"))
  key_name               = "stratus-key"
  subnet_id              = element(local.private_subnets, count.index)
  vpc_security_group_ids = [aws_security_group.cluster.id]
  tags = {
    Name = "${local.cluster}-master-${count.index}"
  }
}

resource "aws_instance" "node" {
  count                  = 3
  ami                    = "ami-0abcdef1234567890"
  instance_type          = "m5.xlarge"
  user_data              = sensitive(file("${path.module}/cloud-init/node-${count.index}.yaml"))
  key_name               = "stratus-key"
  subnet_id              = element(local.private_subnets, count.index)
  vpc_security_group_ids = [aws_security_group.cluster.id]
  tags = {
    Name = "${local.cluster}-node-${count.index}"
  }
}

resource "aws_instance" "gluster" {
  count                  = 2
  ami                    = "ami-0abcdef1234567890"
  instance_type          = "m5.large"
  user_data              = sensitive(file("${path.module}/cloud-init/gluster-${count.index}.yaml"))
  key_name               = "stratus-key"
  subnet_id              = element(local.private_subnets, count.index)
  vpc_security_group_ids = [aws_security_group.cluster.id]
  tags = {
    Name = "${local.cluster}-gluster-${count.index}"
  }
}

resource "aws_ebs_volume" "etcd" {
  count             = 3
  availability_zone = aws_instance.master[count.index].availability_zone
  size              = 10
  type              = "gp3"
}

resource "aws_volume_attachment" "etcd" {
  count       = 3
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.etcd[count.index].id
  instance_id = aws_instance.master[count.index].id
}

resource "aws_ebs_volume" "brick" {
  count             = 2
  availability_zone = aws_instance.gluster[count.index].availability_zone
  size              = 100
  type              = "gp3"
}

resource "aws_volume_attachment" "brick" {
  count       = 2
  device_name = "/dev/sdg"
  volume_id   = aws_ebs_volume.brick[count.index].id
  instance_id = aws_instance.gluster[count.index].id
}

resource "aws_eip" "master" {
  count    = 3
  domain   = "vpc"
  instance = aws_instance.master[count.index].id
}

resource "aws_lb" "api" {
  name               = "${local.cluster}-api"
  load_balancer_type = "network"
  internal           = false
  subnets            = local.public_subnets
}

resource "aws_lb_target_group" "api" {
  name     = "${local.cluster}-api"
  port     = 6443
  protocol = "TCP"
  vpc_id   = "vpc-0a1b2c3d"
}

resource "aws_lb_target_group_attachment" "api" {
  count            = 3
  target_group_arn = aws_lb_target_group.api.arn
  target_id        = aws_instance.master[count.index].id
  port             = 6443
}

resource "aws_lb_listener" "api" {
  load_balancer_arn = aws_lb.api.arn
  port              = 6443
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

output "api_address" {
  value = aws_lb.api.dns_name
}

output "master_addresses" {
  value = aws_instance.master[*].private_ip
}

output "master_public_ips" {
  value = aws_eip.master[*].public_ip
}

output "node_addresses" {
  value = aws_instance.node[*].private_ip
}

output "gluster_addresses" {
  value = aws_instance.gluster[*].private_ip
}
