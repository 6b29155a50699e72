variable "auth_url" {
  description = "Keystone v3 URL."
  type        = string
}

variable "image_name" {
  description = "The service image (packer/service.pkr.hcl)."
  type        = string
}

variable "replica_image_name" {
  description = "The replica image (packer/replica.pkr.hcl)."
  type        = string
}

variable "ops_network_id" {
  description = "ID of the operations network."
  type        = string
}

variable "dataplane_password" {
  description = "Password of the Data Plane API user (ansible role haproxy: haproxy_dataplane_password)."
  type        = string
  sensitive   = true
}

variable "api_admin_token" {
  description = "Admin bearer token of the service's API (at least 32 characters)."
  type        = string
  sensitive   = true
}

variable "pg_monitor_password" {
  description = "Password of the PostgreSQL role the service probes replicas with."
  type        = string
  sensitive   = true
}
