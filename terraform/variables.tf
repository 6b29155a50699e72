# ---- where and what ------------------------------------------------------------------------

variable "name" {
  description = "Name of the server and prefix of every resource the module creates."
  type        = string
  default     = "replica-autoscaler"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}$", var.name))
    error_message = "The name must be lowercase letters, digits and dashes, starting with a letter (at most 41 characters)."
  }
}

variable "image_name" {
  description = "The service image built by packer/service.pkr.hcl, e.g. replica-autoscaler-0.1.0-20250101120000."
  type        = string
}

variable "flavor_name" {
  description = "Flavor of the service's server (1 vCPU and 1 GiB are plenty)."
  type        = string
}

variable "network_id" {
  description = "ID of the operations network the server is attached to."
  type        = string
}

variable "subnet_id" {
  description = "Subnet of the operations network to take the fixed IP from; null: any subnet of the network."
  type        = string
  default     = null
}

variable "availability_zone" {
  description = "Availability zone of the server; null: the cloud chooses."
  type        = string
  default     = null
}

variable "instance_count" {
  description = "How many service instances to run: 1, or 2 to 5 for high availability (one leads, elected on etcd_endpoints; the others answer reads and take over within the lease TTL)."
  type        = number
  default     = 1

  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 5 && floor(var.instance_count) == var.instance_count
    error_message = "The instance_count must be a whole number from 1 to 5."
  }
}

variable "etcd_endpoints" {
  description = "etcd v3 client URLs (http:// or https://) the instances elect their leader on and keep operator intent in (the configuration's ha.etcd.endpoints); required when instance_count > 1, empty: no ha section."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.etcd_endpoints : can(regex("^https?://[^/\\s]+/?$", e))])
    error_message = "Each etcd endpoint must be a URL like https://10.20.0.30:2379 (scheme, host and port, no path)."
  }
}

variable "etcd_lease_ttl" {
  description = "The leader's lease on etcd (ha.lease_ttl): a follower takes over at most this long (plus one loop interval) after the leader dies."
  type        = string
  default     = "10s"

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m)$", var.etcd_lease_ttl))
    error_message = "The etcd_lease_ttl must be a duration such as 10s."
  }
}

variable "key_pair" {
  description = "Nova key pair for SSH access; null: none."
  type        = string
  default     = null
}

variable "server_metadata" {
  description = "Extra Nova metadata of the server."
  type        = map(string)
  default     = {}
}

# ---- network access ------------------------------------------------------------------------

variable "api_port" {
  description = "TCP port of the service's HTTP API and /metrics."
  type        = number
  default     = 8080
}

variable "api_scheme" {
  description = "Scheme of the API URL in the outputs: http, or https when a TLS proxy fronts the API."
  type        = string
  default     = "http"

  validation {
    condition     = contains(["http", "https"], var.api_scheme)
    error_message = "The api_scheme must be http or https."
  }
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach the API port (operators, Grafana, vmagent). Nothing else may connect to the server, except SSH from ssh_cidrs."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrnetmask(c)) || can(cidrhost(c, 0))])
    error_message = "The admin_cidrs must be a non-empty list of CIDRs."
  }
}

variable "ssh_cidrs" {
  description = "CIDRs allowed to reach SSH (port 22); empty: no SSH."
  type        = list(string)
  default     = []
}

variable "egress" {
  description = <<-EOT
    Where the service may connect, by purpose; the security group allows these and nothing else
    (its default allow-all egress rules are removed). Each entry: CIDRs and TCP ports.
      cloud_apis:  Keystone, Nova, Cinder, Designate (and Glance) endpoints
      dataplane:   the HAProxy Data Plane API
      metrics:     VictoriaMetrics or Prometheus
      postgresql:  the primary and the replicas (probes), and Patroni's REST API if used
      etcd:        etcd_endpoints, when instance_count > 1 (optional)
      dns:         resolvers (UDP and TCP)
      ntp:         time servers (UDP)
  EOT
  type = object({
    cloud_apis = object({ cidrs = list(string), ports = list(number) })
    dataplane  = object({ cidrs = list(string), ports = list(number) })
    metrics    = object({ cidrs = list(string), ports = list(number) })
    postgresql = object({ cidrs = list(string), ports = list(number) })
    etcd       = optional(object({ cidrs = list(string), ports = list(number) }), { cidrs = [], ports = [2379] })
    dns        = optional(object({ cidrs = list(string), ports = list(number) }), { cidrs = [], ports = [53] })
    ntp        = optional(object({ cidrs = list(string), ports = list(number) }), { cidrs = [], ports = [123] })
  })
}

# ---- OpenStack credentials of the service --------------------------------------------------

variable "auth_url" {
  description = "Keystone v3 URL the service authenticates against (written into its configuration)."
  type        = string
}

variable "cloud_name" {
  description = "Key of the cloud in the configuration's clouds: map; the module fills in its auth block."
  type        = string
  default     = "default"
}

variable "application_credential_roles" {
  description = "Roles of the application credential (a subset of the Terraform user's roles in the project)."
  type        = list(string)
  default     = ["member"]
}

variable "application_credential_expires_at" {
  description = "RFC 3339 expiry of the application credential; null: it does not expire (rotate it by replacing the resource)."
  type        = string
  default     = null
}

variable "application_credential_access_rules" {
  description = "Keystone access rules limiting the application credential to the API calls the service makes; null: the module's list (main.tf, local.access_rules)."
  type = list(object({
    service = string
    method  = string
    path    = string
  }))
  default = null
}

# ---- configuration and secrets -------------------------------------------------------------

variable "config" {
  description = <<-EOT
    The service's configuration (docs/configuration.md) as an object, written to
    /etc/replica-autoscaler/config.yaml by cloud-init. The module sets
    clouds[cloud_name].auth (application credential) and api.listen (0.0.0.0:api_port).
    Secrets are never values here: name files under /etc/replica-autoscaler/secrets/ with
    {file = "..."} and pass their content in `secrets`.
  EOT
  type        = any
}

variable "secrets" {
  description = "Secret files: name -> content, written by cloud-init to /etc/replica-autoscaler/secrets/<name>, mode 0600, owned by the service user. The name os-app-cred is reserved for the application credential's secret."
  type        = map(string)
  default     = {}
  sensitive   = true
}
