# A complete deployment of replica-autoscaler with the module: the service in the operations
# network managing the read replicas of one cluster.
#
#   export OS_CLOUD=prod                          # credentials of whoever runs Terraform
#   export TF_VAR_dataplane_password=...          # secrets come from the environment or a
#   export TF_VAR_api_admin_token=...             # secret store, never from a file in git
#   export TF_VAR_pg_monitor_password=...
#   terraform init && terraform apply

provider "openstack" {}

module "replica_autoscaler" {
  source = "../.."

  name        = "replica-autoscaler"
  image_name  = var.image_name
  flavor_name = "m1.small"
  network_id  = var.ops_network_id
  key_pair    = "ops"

  auth_url   = var.auth_url
  cloud_name = "prod"

  admin_cidrs = ["10.20.0.0/24"]
  ssh_cidrs   = ["10.20.0.0/24"]
  egress = {
    cloud_apis = { cidrs = ["10.0.0.10/32"], ports = [443, 5000, 8774, 8776, 9001, 9292] }
    dataplane  = { cidrs = ["10.20.0.10/32"], ports = [5555] }
    metrics    = { cidrs = ["10.20.0.20/32"], ports = [8428] }
    postgresql = { cidrs = ["10.20.1.0/24"], ports = [5432, 8008] }
    dns        = { cidrs = ["10.20.0.2/32"], ports = [53] }
  }

  secrets = {
    dataplane  = var.dataplane_password
    token-ops  = var.api_admin_token
    pg-monitor = var.pg_monitor_password
  }

  config = {
    clouds = {
      prod = {
        region             = "RegionOne"
        availability_zones = ["msk-a", "msk-b"]
      }
    }
    load_balancers = {
      haproxy-ro = {
        url      = "http://10.20.0.10:5555"
        username = "replica-autoscaler"
        password = { file = "/etc/replica-autoscaler/secrets/dataplane" }
      }
    }
    metrics = { url = "http://10.20.0.20:8428" }
    clusters = [{
      name    = "orders"
      cloud   = "prod"
      primary = { static = { host = "10.20.1.10", port = 5432 } }
      donor   = { server = "orders-pg-3" }
      replica = {
        flavor          = "m1.xlarge"
        image           = var.replica_image_name
        networks        = ["db-net"]
        security_groups = ["pg-replica"]
        zones           = ["msk-a", "msk-b"]
      }
      postgres = {
        user     = "replica_autoscaler"
        password = { file = "/etc/replica-autoscaler/secrets/pg-monitor" }
      }
      load_balancer = { name = "haproxy-ro", backend = "pg_orders_ro" }
      min_replicas  = 1
      max_replicas  = 8
      policies = [{
        name = "sessions"
        target_tracking = {
          query  = "avg(sum by (instance) (pg_stat_activity_count{ra_cluster=\"orders\", role=\"replica\", state=\"active\"}))"
          target = 40
          value  = "per_replica"
        }
      }]
    }]
    api = {
      tokens = [{ name = "ops", role = "admin", token = { file = "/etc/replica-autoscaler/secrets/token-ops" } }]
    }
  }
}
