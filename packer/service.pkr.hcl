# The replica-autoscaler service image: Debian 12 with the replica-autoscaler package installed
# and its unit enabled (Ansible role replica_autoscaler), without configuration. The Terraform
# module (terraform/) boots it and cloud-init writes the configuration and the secret files.
#
#   (cd build && cpack -G DEB)
#   packer build -var version=0.1.0 -var source_image=debian-12-genericcloud-amd64 \
#     -var flavor=m1.small -var 'networks=["<network id>"]' \
#     -var package_deb=build/replica-autoscaler_0.1.0_amd64.deb packer/service.pkr.hcl
#
# No credentials here: the openstack builder reads the usual OS_* variables (OS_AUTH_URL,
# OS_APPLICATION_CREDENTIAL_ID, OS_APPLICATION_CREDENTIAL_SECRET, OS_REGION_NAME, ...) or
# OS_CLOUD with a clouds.yaml.

variable "version" {
  type        = string
  description = "Version of the image (the package's version); part of the image name."
}

variable "package_deb" {
  type        = string
  description = "Path of the replica-autoscaler .deb built with cpack, on the machine running Packer."
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
  default     = "replica-autoscaler"
  description = "Image names are <prefix>-<version>-<UTC build time, YYYYMMDDhhmmss>, never reused."
}

variable "image_visibility" {
  type        = string
  default     = "private"
  description = "Glance visibility of the image."
}

locals {
  # Immutable, versioned names: a build never replaces the image a running deployment uses.
  build_time = formatdate("YYYYMMDDhhmmss", timestamp())
  image_name = "${var.image_name_prefix}-${var.version}-${local.build_time}"
}

source "openstack" "service" {
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
    ra_image_role    = "replica-autoscaler"
    ra_image_version = var.version
    os_distro        = "debian"
    os_version       = "12"
  }
}

build {
  sources = ["source.openstack.service"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/playbooks/service-image.yml"
    user          = var.ssh_username
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${path.root}/../ansible/ansible.cfg",
      "ANSIBLE_HOST_KEY_CHECKING=False",
    ]
    extra_arguments = ["--extra-vars", "replica_autoscaler_package_deb=${abspath(var.package_deb)}"]
  }

  provisioner "shell" {
    inline = [
      "sudo cloud-init clean --logs --seed",
      "sudo truncate -s 0 /etc/machine-id",
    ]
  }

  post-processor "manifest" {
    output     = "service-manifest.json"
    strip_path = true
  }
}
