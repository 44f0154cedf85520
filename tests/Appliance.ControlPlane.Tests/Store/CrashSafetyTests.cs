using System.Diagnostics;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.HealthChecks;
using Isthmus.ControlPlane.Runtime;
using Isthmus.ControlPlane.Store;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Io;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isthmus.ControlPlane.Tests.Store;

/// <summary>
/// kill -9 during commits, on a real child process: the store opens at the last revision the child
/// reported or the one it was writing, never corrupt, and a restart forwards again within 2 s.
/// Needs no root; runs everywhere, CI included.
/// </summary>
public sealed class CrashSafetyTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Kill_9_during_commits_leaves_the_old_or_the_new_revision_and_restart_forwards_within_2_s()
    {
        var path = _dir.File("config.db");
        var random = new Random(4789);
        for (var round = 0; round < 4; round++)
        {
            var (reported, stderr) = await RunChildAndKill(path, TimeSpan.FromMilliseconds(300 + random.Next(700)));
            Assert.True(reported > 0, $"round {round}: the child reported no commit before it was killed: {stderr}");

            using var store = ConfigStore.Open(path, TimeProvider.System);
            Assert.Equal("ok", store.IntegrityCheck());
            var head = store.Head()!;
            // The child prints a revision after its transaction committed: the head is that one or the next.
            Assert.InRange(head.Id, reported, reported + 1);
            var parsed = ConfigDocumentJson.Parse(head.Document);
            Assert.Empty(parsed.Errors);
            Assert.Equal(head.Id, store.Count);
        }

        // Restart: the last committed revision is applied and forwarding within 2 s.
        var started = Stopwatch.StartNew();
        using var restarted = ConfigStore.Open(path, TimeProvider.System);
        using var config = new ConfigService(restarted, TimeProvider.System, NullLogger<ConfigService>.Instance);
        var ports = new MemoryPortFactory();
        using var runtime = new DataPlaneRuntime(config, ports, TimeProvider.System, new HealthMonitor(TimeProvider.System, NullLogger<HealthMonitor>.Instance), NullLogger<DataPlaneRuntime>.Instance);
        await runtime.StartAsync(CancellationToken.None);
        try
        {
            Assert.Equal(restarted.Head()!.Id, runtime.SnapshotVersion);
            var expectedVlan = config.Current.Document.Program.BridgeDomains[0].Segments[1].Vlan;
            ports["acc10"].Enqueue(new MemoryFrame(Frames.Ethernet(Frames.Broadcast, Frames.HostA)));
            while (ports["trunk0"].Transmitted.Count == 0 && started.Elapsed < TimeSpan.FromSeconds(5))
            {
                await Task.Delay(5);
            }

            var forwardedAfter = started.Elapsed;
            var sent = Assert.Single(ports["trunk0"].Transmitted).Bytes;
            Assert.Equal(expectedVlan, ((sent[14] << 8) | sent[15]) & 0x0FFF);
            Assert.True(forwardedAfter < TimeSpan.FromSeconds(2), $"forwarding again took {forwardedAfter.TotalMilliseconds:F0} ms");
        }
        finally
        {
            await runtime.StopAsync(CancellationToken.None);
        }
    }

    private static async Task<(long Reported, string Stderr)> RunChildAndKill(string store, TimeSpan after)
    {
        var assembly = typeof(ChildProcess).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(assembly);
        psi.ArgumentList.Add("commit-loop");
        psi.ArgumentList.Add(store);
        using var child = Process.Start(psi)!;
        long last = 0;
        var firstCommit = new TaskCompletionSource();
        var reader = Task.Run(async () =>
        {
            while (await child.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                Volatile.Write(ref last, long.Parse(line, System.Globalization.CultureInfo.InvariantCulture));
                firstCommit.TrySetResult();
            }
        });
        var stderr = child.StandardError.ReadToEndAsync();
        await Task.WhenAny(firstCommit.Task, Task.Delay(TimeSpan.FromSeconds(30)));
        await Task.Delay(after);
        // SIGKILL: no finaliser, no flush, no SQLite rollback: exactly what a power cut leaves.
        child.Kill();
        await child.WaitForExitAsync();
        await reader;
        return (Volatile.Read(ref last), child.HasExited ? await stderr : "");
    }
}
