output "api_url" {
  description = "Base URL of the (first) instance's HTTP API (and /metrics, /healthz), on its fixed IP; with several instances, see api_urls."
  value       = "${var.api_scheme}://${openstack_networking_port_v2.service[0].all_fixed_ips[0]}:${var.api_port}"
}

output "metrics_target" {
  description = "host:port of the (first) instance for scraping /metrics; with several instances, see metrics_targets."
  value       = "${openstack_networking_port_v2.service[0].all_fixed_ips[0]}:${var.api_port}"
}

output "server_id" {
  description = "Nova ID of the (first) instance's server."
  value       = openstack_compute_instance_v2.service[0].id
}

output "fixed_ip" {
  description = "The (first) instance's address in the operations network."
  value       = openstack_networking_port_v2.service[0].all_fixed_ips[0]
}

output "security_group_id" {
  description = "The service's security group (add it to the Data Plane API's and the replicas' ingress rules as a remote group if you prefer that to CIDRs)."
  value       = openstack_networking_secgroup_v2.service.id
}

output "application_credential_id" {
  description = "ID of the service's application credential (its secret is only in the server's secret file and in the Terraform state)."
  value       = openstack_identity_application_credential_v3.service.id
}

output "api_urls" {
  description = "Every instance's API base URL, in instance order: any of them answers reads; writes go to the leader (a follower answers 503 not_leader naming it)."
  value       = [for p in openstack_networking_port_v2.service : "${var.api_scheme}://${p.all_fixed_ips[0]}:${var.api_port}"]
}

output "metrics_targets" {
  description = "host:port of every instance for scraping /metrics (vmagent role: vmagent_replica_autoscaler_targets); replica_autoscaler_leader says which one leads."
  value       = [for p in openstack_networking_port_v2.service : "${p.all_fixed_ips[0]}:${var.api_port}"]
}

output "server_ids" {
  description = "Nova IDs of every instance's server."
  value       = openstack_compute_instance_v2.service[*].id
}

output "instance_names" {
  description = "The instances' names, also their ha.instance (what /readyz and the leader key on etcd show)."
  value       = local.instance_names
}
