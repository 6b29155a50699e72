# replica-autoscaler in the operations network: one server (or instance_count servers, which
# elect a leader on etcd) from the service image, their ports and security group, an application
# credential limited to the calls the service makes, and cloud-init that writes the configuration
# and the secret files.

locals {
  secrets_dir = "/etc/replica-autoscaler/secrets"

  # One instance keeps the module's name; several are <name>-1, <name>-2, ... and each is the
  # configuration's ha.instance, the name /readyz and the leader key on etcd show.
  instance_names = var.instance_count == 1 ? [var.name] : [for i in range(var.instance_count) : "${var.name}-${i + 1}"]

  # What the service calls (openstack/ in the repository): Nova servers, flavors, zones, limits
  # and quotas; Cinder volumes, snapshots, limits and quotas; Designate record sets; Glance
  # images to resolve the replica image's name. "*" is one path segment, "**" any number.
  default_access_rules = concat(
    [for m in ["GET", "POST", "PUT", "DELETE"] : { service = "compute", method = m, path = "/v2.1/servers" }],
    [for m in ["GET", "POST", "PUT", "DELETE"] : { service = "compute", method = m, path = "/v2.1/servers/**" }],
    [for p in ["/v2.1/flavors", "/v2.1/flavors/**", "/v2.1/os-availability-zone", "/v2.1/limits", "/v2.1/os-quota-sets/**"] :
    { service = "compute", method = "GET", path = p }],
    [for m in ["GET", "POST", "PUT", "DELETE"] : { service = "volumev3", method = m, path = "/v3/*/volumes" }],
    [for m in ["GET", "POST", "PUT", "DELETE"] : { service = "volumev3", method = m, path = "/v3/*/volumes/**" }],
    [for m in ["GET", "POST", "PUT", "DELETE"] : { service = "volumev3", method = m, path = "/v3/*/snapshots" }],
    [for m in ["GET", "POST", "PUT", "DELETE"] : { service = "volumev3", method = m, path = "/v3/*/snapshots/**" }],
    [for p in ["/v3/*/limits", "/v3/*/os-quota-sets/**", "/v3/*/types", "/v3/*/os-availability-zone"] :
    { service = "volumev3", method = "GET", path = p }],
    [for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] : { service = "dns", method = m, path = "/v2/zones/**" }],
    [{ service = "dns", method = "GET", path = "/v2/zones" }],
    [{ service = "image", method = "GET", path = "/v2/images" }, { service = "image", method = "GET", path = "/v2/images/*" }],
  )
  access_rules = coalesce(var.application_credential_access_rules, local.default_access_rules)

  # The configuration, with the cloud's auth and the API address filled in by the module.
  config_clouds = try(var.config.clouds, {})
  config = merge(var.config, {
    clouds = merge(local.config_clouds, {
      (var.cloud_name) = merge(try(local.config_clouds[var.cloud_name], {}), {
        auth = {
          type                          = "application_credential"
          auth_url                      = var.auth_url
          application_credential_id     = openstack_identity_application_credential_v3.service.id
          application_credential_secret = { file = "${local.secrets_dir}/os-app-cred" }
        }
      })
    })
    api = merge(try(var.config.api, {}), { listen = "0.0.0.0:${var.api_port}" })
  })

  # With etcd_endpoints, the ha section (docs/configuration.md): the endpoints and the lease from
  # the module's inputs, anything else (tls, auth, key_prefix) from config.ha; the instance name
  # differs per server. Without them, no ha section: one instance with its own state.json.
  ha = { for k in(length(var.etcd_endpoints) > 0 ? ["ha"] : []) : k => merge(try(var.config.ha, {}), {
    etcd      = merge(try(var.config.ha.etcd, {}), { endpoints = var.etcd_endpoints })
    lease_ttl = var.etcd_lease_ttl
  }) }
  instance_configs = [for name in local.instance_names :
    merge(local.config, { for k, v in local.ha : k => merge(v, { instance = name }) })
  ]

  secret_files = merge(var.secrets, { "os-app-cred" = openstack_identity_application_credential_v3.service.secret })

  # cloud-init, one per instance: files first (the image's package created the user and the
  # directories), then start the service. Contents are base64 so no YAML quoting can change them.
  cloud_inits = [for config in local.instance_configs : join("\n", ["#cloud-config", yamlencode({
    write_files = concat(
      [{
        path        = "/etc/replica-autoscaler/config.yaml"
        owner       = "root:replica-autoscaler"
        permissions = "0640"
        encoding    = "b64"
        content     = base64encode(yamlencode(config))
      }],
      [for name in sort(keys(local.secret_files)) : {
        path        = "${local.secrets_dir}/${name}"
        owner       = "replica-autoscaler:replica-autoscaler"
        permissions = "0600"
        encoding    = "b64"
        content     = base64encode(local.secret_files[name])
      }],
    )
    runcmd = [
      ["systemctl", "enable", "--now", "replica-autoscaler.service"],
    ]
  })])]

  egress_rules = merge([
    for purpose, target in var.egress : merge([
      for cidr in target.cidrs : {
        for pair in setproduct(contains(["dns"], purpose) ? ["tcp", "udp"] : (purpose == "ntp" ? ["udp"] : ["tcp"]), target.ports) :
        "${purpose}-${pair[0]}-${cidr}-${pair[1]}" => { protocol = pair[0], cidr = cidr, port = pair[1], purpose = purpose }
      }
    ]...)
  ]...)

  ingress_rules = merge(
    { for cidr in var.admin_cidrs : "api-${cidr}" => { cidr = cidr, port = var.api_port, purpose = "API" } },
    { for cidr in var.ssh_cidrs : "ssh-${cidr}" => { cidr = cidr, port = 22, purpose = "SSH" } },
  )
}

resource "openstack_identity_application_credential_v3" "service" {
  name         = "${var.name}-service"
  description  = "replica-autoscaler ${var.name}: restricted to the API calls the service makes"
  roles        = var.application_credential_roles
  unrestricted = false
  expires_at   = var.application_credential_expires_at

  dynamic "access_rules" {
    for_each = local.access_rules
    content {
      service = access_rules.value.service
      method  = access_rules.value.method
      path    = access_rules.value.path
    }
  }
}

resource "openstack_networking_secgroup_v2" "service" {
  name                 = "${var.name}-service"
  description          = "replica-autoscaler: API from admin CIDRs only; egress to what the service calls"
  delete_default_rules = true
}

resource "openstack_networking_secgroup_rule_v2" "ingress" {
  for_each = local.ingress_rules

  security_group_id = openstack_networking_secgroup_v2.service.id
  description       = "${each.value.purpose} from ${each.value.cidr}"
  direction         = "ingress"
  ethertype         = can(regex(":", each.value.cidr)) ? "IPv6" : "IPv4"
  protocol          = "tcp"
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
}

resource "openstack_networking_secgroup_rule_v2" "egress" {
  for_each = local.egress_rules

  security_group_id = openstack_networking_secgroup_v2.service.id
  description       = "${each.value.purpose} to ${each.value.cidr}"
  direction         = "egress"
  ethertype         = can(regex(":", each.value.cidr)) ? "IPv6" : "IPv4"
  protocol          = each.value.protocol
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
}

# Several instances go to different hypervisors (soft: a small cloud may have only one).
resource "openstack_compute_servergroup_v2" "service" {
  count    = var.instance_count > 1 ? 1 : 0
  name     = "${var.name}-service"
  policies = ["soft-anti-affinity"]
}

resource "openstack_networking_port_v2" "service" {
  count              = var.instance_count
  name               = "${local.instance_names[count.index]}-service"
  network_id         = var.network_id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.service.id]

  dynamic "fixed_ip" {
    for_each = var.subnet_id == null ? [] : [var.subnet_id]
    content {
      subnet_id = fixed_ip.value
    }
  }
}

resource "openstack_compute_instance_v2" "service" {
  count             = var.instance_count
  name              = local.instance_names[count.index]
  image_name        = var.image_name
  flavor_name       = var.flavor_name
  key_pair          = var.key_pair
  availability_zone = var.availability_zone
  user_data         = local.cloud_inits[count.index]
  config_drive      = true

  metadata = merge(var.server_metadata, {
    ra_role    = "service"
    ra_service = var.name
  })

  network {
    port = openstack_networking_port_v2.service[count.index].id
  }

  dynamic "scheduler_hints" {
    for_each = openstack_compute_servergroup_v2.service
    content {
      group = scheduler_hints.value.id
    }
  }

  lifecycle {
    precondition {
      condition     = var.instance_count == 1 || length(var.etcd_endpoints) > 0
      error_message = "Several instances need etcd_endpoints to elect their leader on: without them each would act alone."
    }
  }
}

# Before instance_count, the port and the server were single resources: an existing deployment
# keeps them as instance 0 instead of replacing them.
moved {
  from = openstack_networking_port_v2.service
  to   = openstack_networking_port_v2.service[0]
}

moved {
  from = openstack_compute_instance_v2.service
  to   = openstack_compute_instance_v2.service[0]
}
