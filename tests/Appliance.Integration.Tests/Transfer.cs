using System.Globalization;
using System.Security.Cryptography;

namespace Isthmus.Integration.Tests;

/// <summary>HTTP transfers between lab namespaces: python's http.server in one, curl in the other.</summary>
public static class Transfer
{
    public const int Size = 400_000;

    private static readonly Lazy<(string Dir, string Sha)> Www = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), "ist-it-www");
        Directory.CreateDirectory(dir);
        byte[] data = RandomNumberGenerator.GetBytes(Size);
        File.WriteAllBytes(Path.Combine(dir, "blob.bin"), data);
        return (dir, Convert.ToHexStringLower(SHA256.HashData(data)));
    });

    private const int MaxSeconds = 20;
    private const double SlowSeconds = 5;

    private static int _nextPort = 18000;

    /// <summary>Oversized / truncated receive drops between two snapshots, explained; empty when none.</summary>
    private static string Dropped(CounterSnapshot before, CounterSnapshot after)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var (key, v) in after.Drops)
        {
            long d = v - before.Drops.GetValueOrDefault(key);
            if (d > 0 && (key.EndsWith("Oversized", StringComparison.Ordinal) || key.EndsWith("MtuExceeded", StringComparison.Ordinal) || key.EndsWith("Truncated", StringComparison.Ordinal)))
            {
                sb.Append(CultureInfo.InvariantCulture, $"drop {key} +{d}\n");
            }
        }

        foreach (var (name, port) in after.Ports)
        {
            long d = port.RxTruncated - (before.Ports.TryGetValue(name, out var b) ? b.RxTruncated : 0);
            if (d > 0)
            {
                sb.Append(CultureInfo.InvariantCulture, $"port {name} rxTruncated +{d}\n");
            }
        }

        if (sb.Length > 0)
        {
            sb.Append("(Peers with TSO/GSO on hand AF_PACKET sockets on veth GSO frames of up to 64 kB; ")
              .Append("the appliance must segment them (PACKET_VNET_HDR) or drops them. ISTHMUS_LAB_PEER_GSO=off turns the peers' GSO off.)\n");
        }

        return sb.ToString();
    }

    /// <summary>Serves a 400 kB random file from <paramref name="serverNs"/> and fetches it from <paramref name="clientNs"/>; checks size and hash.</summary>
    public static async Task MustFetch(string serverNs, string serverAddress, string clientNs)
    {
        var (dir, sha) = Www.Value;
        int port = Interlocked.Increment(ref _nextPort);
        string p = port.ToString(CultureInfo.InvariantCulture);
        using var server = Lab.Start(serverNs, $"{Lab.ScapyPython} -m http.server {p} --bind {serverAddress} --directory {dir}");
        await Lab.WaitListening(serverNs, port);
        string file = Path.Combine(Path.GetTempPath(), $"ist-it-dl-{Guid.NewGuid():N}");
        var before = await Lab.Counters();
        try
        {
            var r = await Lab.Exec(clientNs,
                $"curl -sS --max-time {MaxSeconds} -o {file} -w '%{{size_download}} %{{time_total}}' http://{serverAddress}:{p}/blob.bin",
                TimeSpan.FromSeconds(MaxSeconds + 10));
            var after = await Lab.Counters();
            string[] got = r.Stdout.Trim().Split(' ');
            string what = $"[{clientNs}] curl http://{serverAddress}:{p}/blob.bin ({serverNs})";
            string why = Dropped(before, after);
            Assert.True(r.Ok && got[0] == Size.ToString(CultureInfo.InvariantCulture),
                $"{what}: expected {Size} bytes within {MaxSeconds}s\n{why}{r}\nserver: {server.Stderr}\n{await Lab.Diagnostics()}");
            double seconds = double.Parse(got[1], CultureInfo.InvariantCulture);
            // 400 kB across this lab takes a few tens of milliseconds; seconds mean lost segments and retransmits.
            Assert.True(seconds < SlowSeconds, $"{what}: {Size} bytes took {seconds:F1}s (> {SlowSeconds}s)\n{why}{await Lab.Diagnostics()}");
            Assert.True(why.Length == 0, $"{what}: the transfer completed but the appliance dropped frames on the way\n{why}");
            string sha256 = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(file)));
            Assert.Equal(sha, sha256);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
