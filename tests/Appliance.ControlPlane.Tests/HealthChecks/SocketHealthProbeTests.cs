using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isthmus.ControlPlane.HealthChecks;
using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.Tests.HealthChecks;

/// <summary>The real probes against listeners on loopback (in the test's own network namespace).</summary>
public class SocketHealthProbeTests
{
    private static readonly SocketHealthProbe Probe = new(() => null);

    private static HealthTarget Target(int port, HealthCheckSpec check) => new("test/127.0.0.1:" + port, IPAddress.Loopback, port, check);

    private static CancellationToken Timeout() => new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token;

    private static int ClosedPort(SocketType type, ProtocolType protocol)
    {
        using var s = new Socket(AddressFamily.InterNetwork, type, protocol);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    [Fact]
    public async Task Tcp_connect_passes_on_a_listener_and_fails_on_a_closed_port()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            Assert.True((await Probe.ProbeAsync(Target(port, new HealthCheckSpec()), Timeout())).Healthy);
        }
        finally
        {
            listener.Stop();
        }

        var closed = await Probe.ProbeAsync(Target(ClosedPort(SocketType.Stream, ProtocolType.Tcp), new HealthCheckSpec()), Timeout());
        Assert.False(closed.Healthy);
        Assert.Equal("ConnectionRefused", closed.Detail);
    }

    [Theory]
    [InlineData(200, null, true)]
    [InlineData(200, "healthy", true)]
    [InlineData(200, "degraded", false)]
    [InlineData(204, null, false)]
    public async Task Http_get_checks_the_status_and_the_body(int expect, string? match, bool healthy)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var request = new byte[4096];
            var n = await stream.ReadAsync(request);
            var text = Encoding.ASCII.GetString(request, 0, n);
            var body = text.StartsWith("GET /health HTTP/1.1\r\n", StringComparison.Ordinal) ? "status: healthy" : "wrong request";
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
        });
        try
        {
            var result = await Probe.ProbeAsync(Target(port, new HealthCheckSpec { Type = "http", Path = "/health", ExpectStatus = expect, BodyMatch = match }), Timeout());
            Assert.Equal(healthy, result.Healthy);
            await server;
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task Https_get_accepts_a_self_signed_backend()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=backend", key, HashAlgorithmName.SHA256);
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var certificate = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pfx), null);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            await using var tls = new SslStream(client.GetStream());
            await tls.AuthenticateAsServerAsync(certificate);
            var buffer = new byte[4096];
            _ = await tls.ReadAsync(buffer);
            await tls.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"));
        });
        try
        {
            var result = await Probe.ProbeAsync(Target(port, new HealthCheckSpec { Type = "https", BodyMatch = "ok" }), Timeout());
            Assert.True(result.Healthy, result.Detail);
            await server;
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public void Http_verdicts_read_the_status_line()
    {
        var check = new HealthCheckSpec { Type = "http", BodyMatch = "ok" };
        Assert.True(SocketHealthProbe.HttpVerdict("HTTP/1.0 200 OK\r\n\r\nok", check).Healthy);
        Assert.False(SocketHealthProbe.HttpVerdict("HTTP/1.1 503 Service Unavailable\r\n\r\nok", check).Healthy);
        Assert.False(SocketHealthProbe.HttpVerdict("", check).Healthy);
        Assert.False(SocketHealthProbe.HttpVerdict("SSH-2.0-OpenSSH\r\n", check).Healthy);
    }

    [Fact]
    public async Task Udp_passes_on_a_reply_and_fails_on_port_unreachable()
    {
        using var echo = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)echo.Client.LocalEndPoint!).Port;
        var server = Task.Run(async () =>
        {
            var request = await echo.ReceiveAsync();
            await echo.SendAsync(Encoding.UTF8.GetBytes("pong " + Encoding.UTF8.GetString(request.Buffer)), request.RemoteEndPoint);
        });
        var result = await Probe.ProbeAsync(Target(port, new HealthCheckSpec { Type = "udp", UdpPayload = "ping", BodyMatch = "pong" }), Timeout());
        Assert.True(result.Healthy, result.Detail);
        await server;

        var refused = await Probe.ProbeAsync(Target(ClosedPort(SocketType.Dgram, ProtocolType.Udp), new HealthCheckSpec { Type = "udp" }), Timeout());
        Assert.False(refused.Healthy);
        Assert.Equal("ConnectionRefused", refused.Detail);
    }
}
