output "api_url" {
  description = "Base URL of the service's HTTP API (and /metrics, /healthz), on the server's fixed IP."
  value       = "${var.api_scheme}://${openstack_networking_port_v2.service.all_fixed_ips[0]}:${var.api_port}"
}

output "metrics_target" {
  description = "host:port for scraping /metrics (vmagent role: vmagent_replica_autoscaler_targets)."
  value       = "${openstack_networking_port_v2.service.all_fixed_ips[0]}:${var.api_port}"
}

output "server_id" {
  description = "Nova ID of the service's server."
  value       = openstack_compute_instance_v2.service.id
}

output "fixed_ip" {
  description = "The server's address in the operations network."
  value       = openstack_networking_port_v2.service.all_fixed_ips[0]
}

output "security_group_id" {
  description = "The service's security group (add it to the Data Plane API's and the replicas' ingress rules as a remote group if you prefer that to CIDRs)."
  value       = openstack_networking_secgroup_v2.service.id
}

output "application_credential_id" {
  description = "ID of the service's application credential (its secret is only in the server's secret file and in the Terraform state)."
  value       = openstack_identity_application_credential_v3.service.id
}
