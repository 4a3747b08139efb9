//! `legate-echo ADDR=NAME...`: HTTP echo servers for demos and tests, one per argument, e.g.
//! `legate-echo 127.0.0.1:9101=v1 127.0.0.1:9102=v2`. Each answers with a JSON description of
//! the request and its own NAME.

use legate_e2e::echo::EchoServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        anyhow::bail!("usage: legate-echo ADDR=NAME... (e.g. 127.0.0.1:9101=v1)");
    }
    let mut servers = vec![];
    for a in &args {
        let (addr, name) = a.split_once('=').ok_or_else(|| anyhow::anyhow!("{a}: expected ADDR=NAME"))?;
        let s = EchoServer::start(addr, name).await.map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
        eprintln!("legate-echo: {name} listening on http://{}", s.addr);
        servers.push(s);
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
