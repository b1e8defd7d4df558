#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ from the panel lists below.

Run after changing a panel: python3 tools/dashboards.py. The JSON is what gets imported
(Dashboards > Import, pick the Prometheus data source for DS_PROMETHEUS); every query is
evaluated against a running Prometheus by the end-to-end test.
"""
import json
import pathlib

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def variable(name, label, query):
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": name}, "definition": query,
        "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1,
    }


def panel(index, title, description, targets, unit="short", kind="timeseries", width=12):
    return {
        "id": index + 1, "type": kind, "title": title, "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": (index * width) % 24, "y": (index * width) // 24 * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard(uid, title, description, variables, panels):
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
        "uid": uid, "title": title, "description": description, "tags": ["koji", "koji-runbook"],
        "editable": True, "schemaVersion": 39, "version": 1, "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s", "templating": {"list": variables},
        "panels": [panel(i, *p) for i, p in enumerate(panels)],
    }


BUILDERS = dashboard(
    "koji-builders", "Koji builders", "Capacity, load, readiness and tasks of every builder, from the hub.",
    [variable("host", "Host", "label_values(koji_host_capacity, host)")],
    [
        ("Capacity and task load", "Task weight each host may take, and what it reports running.",
         [('koji_host_capacity{host=~"$host"}', "{{host}} capacity"),
          ('koji_host_task_load{host=~"$host"}', "{{host}} load")]),
        ("Ready and enabled hosts", "Hosts ready for tasks, and hosts enabled in Koji.",
         [('sum(koji_host_ready{host=~"$host"})', "ready"), ('sum(koji_host_enabled{host=~"$host"})', "enabled")]),
        ("Since last check-in", "Seconds since each host last called the hub (Koji 1.33+); the scheduler gives up after 180 s.",
         [('time() - koji_host_last_update_timestamp_seconds{host=~"$host"}', "{{host}}")], "s"),
        ("Tasks on hosts", "Open and assigned tasks per host.",
         [('sum by (host, state) (koji_host_tasks{host=~"$host"})', "{{host}} {{state}}")]),
        ("Task queue", "Active tasks by state and channel.",
         [('sum by (state, channel) (koji_tasks)', "{{channel}} {{state}}")]),
        ("Oldest free task", "How long the head of each channel's queue has waited.",
         [('koji_task_oldest_free_age_seconds', "{{channel}}")], "s"),
        ("Builder load per CPU", "1-minute load over CPUs on each builder (kojid stops taking tasks above 4).",
         [('koji_load1 / koji_cpus * on(instance) group_left(host) koji_builder_info', "{{host}}")]),
        ("Builder memory available", "MemAvailable on each builder.",
         [('koji_memory_available_bytes * on(instance) group_left(host) koji_builder_info', "{{host}}")], "bytes"),
    ])

DATABASE = dashboard(
    "koji-database", "Koji hub database", "Connections, their ages, stale connections and slots of the hub's PostgreSQL.",
    [variable("instance", "Exporter", "label_values(koji_db_up, instance)")],
    [
        ("Database up", "Whether koji-exporter could query the hub database.",
         [('koji_db_up{instance=~"$instance"}', "{{instance}}")]),
        ("Connection slots used", "Client connections over the slots non-superusers may use.",
         [('sum by (instance) (koji_db_connections{instance=~"$instance"}) / on(instance) (koji_db_max_connections - koji_db_superuser_reserved_connections)', "{{instance}}")],
         "percentunit"),
        ("Connections by user and state", "Client connections to the server.",
         [('sum by (usename, state) (koji_db_connections{instance=~"$instance"})', "{{usename}} {{state}}")]),
        ("Stale connections", "Connections whose last query started longer ago than the threshold (the runbook's 40 minutes).",
         [('koji_db_stale_connections{instance=~"$instance"}', "{{datname}} {{usename}}")]),
        ("Oldest connection", "Age of the oldest connection by user and state.",
         [('koji_db_connection_max_age_seconds{instance=~"$instance"}', "{{usename}} {{state}}")], "s"),
        ("Oldest query start", "Time since the oldest last-query start by user and state.",
         [('koji_db_query_max_age_seconds{instance=~"$instance"}', "{{usename}} {{state}}")], "s"),
    ])

DISKS = dashboard(
    "koji-builder-disks", "Koji builder disks", "Free space and inodes of the watched mounts, build directories and leftover mounts.",
    [variable("instance", "Machine", "label_values(koji_filesystem_size_bytes, instance)")],
    [
        ("Free space", "Share of each watched mount available to unprivileged users.",
         [('koji_filesystem_avail_bytes{instance=~"$instance"} / koji_filesystem_size_bytes', "{{instance}} {{mountpoint}}")],
         "percentunit"),
        ("Free inodes", "Share of free inodes.",
         [('koji_filesystem_files_free{instance=~"$instance"} / koji_filesystem_files', "{{instance}} {{mountpoint}}")],
         "percentunit"),
        ("Mount errors", "1 where statvfs failed or hung (a dead NFS server).",
         [('koji_filesystem_device_error{instance=~"$instance"}', "{{instance}} {{mountpoint}}")]),
        ("Build directories", "Bytes below each build-dir root, and of entries older than the retention.",
         [('koji_builddir_bytes{instance=~"$instance"}', "{{instance}} {{root}}"),
          ('koji_builddir_stale_bytes{instance=~"$instance"}', "{{instance}} {{root}} stale")], "bytes"),
        ("Leftover mounts in build dirs", "Mount points still active below each root.",
         [('koji_builddir_mounts{instance=~"$instance"}', "{{instance}} {{root}}")]),
        ("Build-dir scan age", "Seconds since the last background scan finished.",
         [('time() - koji_builddir_scan_timestamp_seconds{instance=~"$instance"}', "{{instance}} {{root}}")], "s"),
        ("Services", "1 while a process of the service runs.",
         [('koji_service_up{instance=~"$instance"}', "{{instance}} {{service}}")]),
    ])

REMEDIATION = dashboard(
    "koji-remediation", "Koji remediation", "What koji-remediator received and did.",
    [],
    [
        ("Alerts received", "Alerts from Alertmanager per minute, by name and status.",
         [('sum by (alertname, status) (increase(koji_remediator_alerts_received_total[5m]))', "{{alertname}} {{status}}")]),
        ("Action runs by outcome", "Finished runs per action and outcome.",
         [('sum by (action, outcome) (koji_remediator_actions_total)', "{{action}} {{outcome}}")]),
        ("Run duration (p90)", "90th percentile of run time per action.",
         [('histogram_quantile(0.9, sum by (action, le) (rate(koji_remediator_action_duration_seconds_bucket[5m])))', "{{action}}")], "s"),
        ("Escalations pending", "Runs waiting for on-call.",
         [('koji_remediator_escalations_pending', "pending")]),
        ("Paused", "1 while the global pause switch is on.",
         [('koji_remediator_paused', "paused")]),
    ])

if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parent.parent / "dashboards"
    for name, board in [("koji-builders", BUILDERS), ("koji-database", DATABASE),
                        ("koji-builder-disks", DISKS), ("koji-remediation", REMEDIATION)]:
        (out / f"{name}.json").write_text(json.dumps(board, indent=2) + "\n")
        print(f"wrote dashboards/{name}.json ({len(board['panels'])} panels)")
