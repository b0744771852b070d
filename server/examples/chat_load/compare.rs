//! `chat-load --cluster`: the same fan-out on one node holding all the
//! clients and on two nodes holding half each (the sender on the first), both
//! on Postgres, the two joined by Redis ([`crate::cluster`] starts those);
//! printed side by side.
use std::time::Duration;

use anyhow::{bail, Context};

use crate::{
    cluster, fan_out, grow_listeners, ms, percentile, pin_server, sender_url, Args, CpuPlan,
    Endpoint, FanOut, PASSWORD, SERVE_OPTIONS, USER,
};

/// The nodes' ids in the two-node setup (the sender is on the first).
const NODE_IDS: &[&str] = &["a", "b"];

/// One side of `--cluster`'s comparison.
struct Setup<'a> {
    /// Its column's title.
    title: &'static str,
    /// Its nodes.
    ids: &'static [&'static str],
    /// The Redis URL joining the nodes (several nodes only).
    broker: Option<&'a str>,
    /// Each node's CPUs (taskset lists).
    cpus: Vec<String>,
}

/// `--cluster`: the same fan-out on one node (all the clients) and on two
/// (half each, the sender on the first), printed side by side.
pub async fn compare(args: Args, plan: CpuPlan, generator_cpus: usize) -> anyhow::Result<()> {
    let n = args.clients.last().copied().unwrap_or(1000);
    if n < 2 {
        bail!("--cluster needs at least 2 clients (--clients)");
    }
    eprintln!("chat-load: starting Postgres and Redis");
    let pg = cluster::Postgres::start_or_use(args.pg_url.as_deref()).await?;
    let redis = cluster::Redis::start(&args.redis_bin).await?;
    let key = cluster::KeyFile::create()?;
    let redis_url = redis.url();
    let setups = [
        Setup {
            title: "1 node (Postgres, no broker)",
            ids: NODE_IDS.get(..1).unwrap_or_default(),
            broker: None,
            cpus: vec![plan.single.clone()],
        },
        Setup {
            title: "2 nodes (Postgres + Redis)",
            ids: NODE_IDS,
            broker: Some(&redis_url),
            cpus: plan.nodes.clone(),
        },
    ];
    let mut results = Vec::with_capacity(setups.len());
    for setup in &setups {
        eprintln!(
            "chat-load: {}: {n} clients, {} msg/s for {} s",
            setup.title, args.rate, args.seconds
        );
        let r = measure(&args, &pg, &key, setup, n)
            .await
            .with_context(|| format!("the {} run", setup.title))?;
        results.push(r);
    }

    println!(
        "chat fan-out, one node against two: {n} clients in one room, {} msg/s for {} s from \
         one sender on node a, {}% of the clients rich (v=1)",
        args.rate,
        args.seconds,
        args.rich_percent.min(100)
    );
    println!(
        "  database: {}; each setup on a fresh database of it (the one node on Postgres too)",
        pg.description
    );
    println!(
        "  broker (two nodes): {} on 127.0.0.1:{}, no persistence",
        args.redis_bin.display(),
        redis.port
    );
    match &plan.shared {
        Some(why) => println!("  CPUs: NOTE: {why}"),
        None => println!("  CPUs: each node pinned to a CPU of its own (see the table)"),
    }
    println!(
        "  load generator on the other {generator_cpus} CPU(s){}",
        if args.pg_url.is_some() {
            " (with Redis)"
        } else {
            " (with Redis and Postgres)"
        }
    );
    println!(
        "  latency: from each message's send time (the sender sends each at its intended time) \
         to its receipt, for every client; \"cross-node\": clients on node b, their messages \
         went through Redis"
    );
    let columns: Vec<(&Setup, &FanOut)> = setups.iter().zip(&results).collect();
    print_table(
        &columns.iter().map(|(s, _)| s.title).collect::<Vec<_>>(),
        &comparison_rows(&columns),
    );
    Ok(())
}

/// Runs one setup on a fresh database of `pg`, then drops the database.
async fn measure(
    args: &Args,
    pg: &cluster::Postgres,
    key: &cluster::KeyFile,
    setup: &Setup<'_>,
    n: usize,
) -> anyhow::Result<FanOut> {
    let database_url = pg.database().await?;
    let result = measure_on(args, &database_url, key, setup, n).await;
    if let Err(e) = pg.drop_database(&database_url).await {
        eprintln!("chat-load: could not drop the setup's database: {e:#}");
    }
    result
}

/// Starts the setup's nodes, connects `n` listeners split evenly over them,
/// and runs the fan-out with the sender on the first node.
async fn measure_on(
    args: &Args,
    database_url: &str,
    key: &cluster::KeyFile,
    setup: &Setup<'_>,
    n: usize,
) -> anyhow::Result<FanOut> {
    let settings = cluster::NodeSettings {
        bin: &args.server_bin,
        database_url,
        broker: setup.broker,
        key_file: &key.path,
        serve_options: SERVE_OPTIONS,
        user: USER,
        password: PASSWORD,
    };
    let nodes = cluster::start_nodes(&settings, setup.ids).await?;
    for (node, cpus) in nodes.iter().zip(&setup.cpus) {
        pin_server(node.pid, cpus)
            .with_context(|| format!("pinning node {} to CPU(s) {cpus}", node.id))?;
    }
    let servers: Vec<Endpoint> = nodes
        .iter()
        .map(|node| Endpoint {
            http: &node.http,
            base: &node.base,
            addr: &node.addr,
        })
        .collect();
    let mut listeners = Vec::with_capacity(n);
    grow_listeners(&servers, &mut listeners, n, args.rich_percent).await?;
    // Let the connections settle (and presence spread between nodes).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sender = sender_url(servers.first().context("no node")?).await?;
    let pids: Vec<u32> = nodes.iter().map(|node| node.pid).collect();
    let result = fan_out(
        listeners,
        nodes.len(),
        sender,
        &pids,
        args.rate,
        args.seconds,
    )
    .await;
    drop(servers);
    for node in nodes {
        node.stop().await;
    }
    result
}

/// "p50 / p99 ms" of sorted latencies.
fn latency_cell(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "none received".to_string();
    }
    format!(
        "{:.2} / {:.2} ms",
        ms(percentile(sorted, 0.50)),
        ms(percentile(sorted, 0.99))
    )
}

/// The comparison table's rows: a label and one cell per setup.
fn comparison_rows(columns: &[(&Setup, &FanOut)]) -> Vec<(String, Vec<String>)> {
    let row = |label: &str, cell: &dyn Fn(&Setup, &FanOut) -> String| {
        (
            label.to_string(),
            columns.iter().map(|(s, r)| cell(s, r)).collect::<Vec<_>>(),
        )
    };
    let per_node = |s: &Setup, f: &dyn Fn(usize, &str) -> String| {
        s.ids
            .iter()
            .enumerate()
            .map(|(i, id)| f(i, id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![
        row("clients", &|s, r| {
            per_node(s, &|i, id| format!("{} on {id}", r.on(i)))
        }),
        row("server CPUs (taskset)", &|s, _| {
            per_node(s, &|i, id| {
                format!("{id}: {}", s.cpus.get(i).map_or("?", String::as_str))
            })
        }),
        row("deliveries", &|_, r| {
            format!("{} of {}", r.delivered(), r.listeners.len() * r.total)
        }),
        row("deliveries per second", &|_, r| {
            format!("{:.0}", r.per_second())
        }),
        row("latency p50 / p99, all clients", &|_, r| {
            latency_cell(&r.all_latencies())
        }),
    ];
    for (i, id) in NODE_IDS.iter().enumerate() {
        let label = if i == 0 {
            format!("  clients on node {id} (the sender's)")
        } else {
            format!("  clients on node {id} (cross-node)")
        };
        rows.push(row(&label, &|_, r| {
            r.latencies
                .get(i)
                .map_or_else(|| "-".to_string(), |l| latency_cell(l))
        }));
    }
    rows.extend([
        row("latency max", &|_, r| {
            format!(
                "{:.2} ms",
                ms(r.all_latencies().last().copied().unwrap_or_default())
            )
        }),
        row("every message once, in order", &|_, r| {
            let failed = r.failed().len();
            if failed == 0 {
                format!("yes, all {} clients", r.listeners.len())
            } else {
                format!("NO: {failed} of {} clients failed", r.listeners.len())
            }
        }),
        row(
            "  missing / duplicates / out of order / id breaks",
            &|_, r| {
                let [missing, duplicates, late, id_breaks] = r.faults();
                format!("{missing} / {duplicates} / {late} / {id_breaks}")
            },
        ),
    ]);
    for (i, id) in NODE_IDS.iter().enumerate() {
        rows.push(row(
            &format!("server CPU, node {id} (% of one core)"),
            &|_, r| {
                r.server_cpu
                    .get(i)
                    .map_or_else(|| "-".to_string(), |&c| format!("{:.0}%", r.percent(c)))
            },
        ));
    }
    rows.extend([
        row("server CPU, all nodes", &|_, r| {
            format!("{:.0}%", r.percent(r.server_cpu.iter().sum()))
        }),
        row("load generator CPU", &|_, r| {
            format!("{:.0}%", r.percent(r.own_cpu))
        }),
        row("load generator's own delay p99 / max", &|_, r| {
            format!(
                "{:.2} / {:.2} ms",
                ms(percentile(&r.lateness, 0.99)),
                ms(r.lateness.last().copied().unwrap_or_default())
            )
        }),
        row("load average before", &|_, r| r.load_before.clone()),
        row("load average after", &|_, r| r.load_after.clone()),
    ]);
    rows
}

/// Prints `rows` under `titles`, the columns aligned.
fn print_table(titles: &[&str], rows: &[(String, Vec<String>)]) {
    let width = |s: &str| s.chars().count();
    let label_width = rows.iter().map(|(l, _)| width(l)).max().unwrap_or(0);
    let mut widths: Vec<usize> = titles.iter().map(|t| width(t)).collect();
    for (_, cells) in rows {
        for (w, cell) in widths.iter_mut().zip(cells) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |label: &str, cells: &mut dyn Iterator<Item = &str>| {
        let mut out = format!("  {label}{}", " ".repeat(label_width - width(label)));
        for (cell, w) in cells.zip(&widths) {
            out.push_str(" | ");
            out.push_str(cell);
            out.push_str(&" ".repeat(w.saturating_sub(width(cell))));
        }
        println!("{}", out.trim_end());
    };
    line("", &mut titles.iter().copied());
    for (label, cells) in rows {
        line(label, &mut cells.iter().map(String::as_str));
    }
}
