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

    private static int _nextPort = 18000;

    /// <summary>Serves a 400 kB random file from <paramref name="serverNs"/> and fetches it from <paramref name="clientNs"/>; checks size and hash.</summary>
    public static async Task MustFetch(string serverNs, string serverAddress, string clientNs)
    {
        var (dir, sha) = Www.Value;
        int port = Interlocked.Increment(ref _nextPort);
        string p = port.ToString(CultureInfo.InvariantCulture);
        using var server = Lab.Start(serverNs, $"{Lab.ScapyPython} -m http.server {p} --bind {serverAddress} --directory {dir}");
        await Lab.WaitListening(serverNs, port);
        string file = Path.Combine(Path.GetTempPath(), $"ist-it-dl-{Guid.NewGuid():N}");
        try
        {
            var r = await Lab.Exec(clientNs,
                $"curl -sS --max-time 20 -o {file} -w '%{{size_download}}' http://{serverAddress}:{p}/blob.bin",
                TimeSpan.FromSeconds(30));
            Assert.True(r.Ok && r.Stdout.Trim() == Size.ToString(CultureInfo.InvariantCulture),
                $"[{clientNs}] curl http://{serverAddress}:{p}/blob.bin from {serverNs}: expected {Size} bytes\n{r}\nserver: {server.Stderr}\n{await Lab.Diagnostics()}");
            string got = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(file)));
            Assert.Equal(sha, got);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
