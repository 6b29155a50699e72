# The PostgreSQL replica image: Debian 12 with PostgreSQL 15 as a standby template, the
# first-boot script and the exporters (Ansible role pg_replica). replica-autoscaler boots every
# replica from it (clusters[].replica.image).
#
#   packer build -var version=0.1.0 -var source_image=debian-12-genericcloud-amd64 \
#     -var flavor=m1.small -var 'networks=["<network id>"]' packer/replica.pkr.hcl
#
# No credentials here: the openstack builder reads the usual OS_* variables (OS_AUTH_URL,
# OS_APPLICATION_CREDENTIAL_ID, OS_APPLICATION_CREDENTIAL_SECRET, OS_REGION_NAME, ...) or
# OS_CLOUD with a clouds.yaml.

variable "version" {
  type        = string
  description = "Version of the image (the project's version); part of the image name."
}

variable "source_image" {
  type        = string
  description = "Name of the Debian 12 (bookworm) cloud image to start from."
}

variable "flavor" {
  type        = string
  description = "Flavor of the temporary build server."
}

variable "networks" {
  type        = list(string)
  description = "Network IDs for the build server; Packer must reach it over SSH."
}

variable "security_groups" {
  type        = list(string)
  default     = []
  description = "Security groups of the build server (SSH from where Packer runs)."
}

variable "floating_ip_network" {
  type        = string
  default     = ""
  description = "External network for a floating IP, when Packer cannot reach the build network directly."
}

variable "availability_zone" {
  type        = string
  default     = ""
  description = "Zone of the build server; empty: the cloud chooses."
}

variable "ssh_username" {
  type        = string
  default     = "debian"
  description = "Login user of the source image."
}

variable "image_name_prefix" {
  type        = string
  default     = "pg-replica-15"
  description = "Image names are <prefix>-<version>-<UTC build time, YYYYMMDDhhmmss>, never reused."
}

variable "image_visibility" {
  type        = string
  default     = "private"
  description = "Glance visibility of the image."
}

locals {
  # Immutable, versioned names: a build never replaces an image a cluster may be booting from.
  build_time = formatdate("YYYYMMDDhhmmss", timestamp())
  image_name = "${var.image_name_prefix}-${var.version}-${local.build_time}"
}

source "openstack" "replica" {
  image_name          = local.image_name
  source_image_name   = var.source_image
  flavor              = var.flavor
  networks            = var.networks
  security_groups     = var.security_groups
  floating_ip_network = var.floating_ip_network
  availability_zone   = var.availability_zone
  ssh_username        = var.ssh_username
  ssh_timeout         = "15m"
  image_visibility    = var.image_visibility
  metadata = {
    ra_image_role    = "pg-replica"
    ra_image_version = var.version
    os_distro        = "debian"
    os_version       = "12"
  }
}

build {
  sources = ["source.openstack.replica"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/playbooks/replica-image.yml"
    user          = var.ssh_username
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${path.root}/../ansible/ansible.cfg",
      "ANSIBLE_HOST_KEY_CHECKING=False",
    ]
    extra_arguments = ["--extra-vars", "pg_replica_start=false"]
  }

  # Clean cloud-init's state and the machine id so every replica boots as a new instance.
  provisioner "shell" {
    inline = [
      "sudo cloud-init clean --logs --seed",
      "sudo truncate -s 0 /etc/machine-id",
    ]
  }

  post-processor "manifest" {
    output     = "replica-manifest.json"
    strip_path = true
  }
}
