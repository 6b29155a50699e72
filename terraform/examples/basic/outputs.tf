output "api_url" {
  description = "The service's API."
  value       = module.replica_autoscaler.api_url
}

output "metrics_target" {
  description = "Scrape target for vmagent."
  value       = module.replica_autoscaler.metrics_target
}
