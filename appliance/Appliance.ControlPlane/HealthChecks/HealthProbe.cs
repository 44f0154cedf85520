using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.HealthChecks;

/// <summary>What one check found: healthy or not, and a line an operator can read.</summary>
public readonly record struct ProbeResult(bool Healthy, string Detail);

/// <param name="Key">The backend's health key ("pool/10.30.0.11:80").</param>
public sealed record HealthTarget(string Key, IPAddress Address, int Port, HealthCheckSpec Check);

/// <summary>Runs one check against one backend. The caller bounds it with the check's timeout through the token.</summary>
public interface IHealthProbe
{
    Task<ProbeResult> ProbeAsync(HealthTarget target, CancellationToken cancellationToken);
}

/// <summary>
/// The real checks, over sockets opened in the data plane's network namespace (sockets keep the
/// namespace they were created in, so only their creation runs inside <see cref="NetworkNamespace"/>,
/// synchronously on the calling thread; connecting and reading happen after, anywhere):
/// TCP connect; HTTP or HTTPS GET with an expected status and optional body substring (HTTP/1.1,
/// Connection: close, at most 64 kB read; HTTPS does not verify the backend's certificate: a health
/// check asks "does it answer", and backends commonly use self-signed ones); UDP: send the payload on
/// a connected socket and wait for a reply (an ICMP port unreachable fails it at once).
/// </summary>
public sealed class SocketHealthProbe(Func<string?> netns) : IHealthProbe
{
    private const int MaxResponse = 64 * 1024;

    public async Task<ProbeResult> ProbeAsync(HealthTarget target, CancellationToken cancellationToken)
    {
        var endpoint = new IPEndPoint(target.Address, target.Port);
        try
        {
            return target.Check.Type switch
            {
                "udp" => await Udp(endpoint, target.Check, cancellationToken).ConfigureAwait(false),
                "http" or "https" => await Http(endpoint, target.Check, cancellationToken).ConfigureAwait(false),
                _ => await Tcp(endpoint, cancellationToken).ConfigureAwait(false),
            };
        }
        catch (OperationCanceledException)
        {
            return new ProbeResult(false, $"timeout after {target.Check.TimeoutMs} ms");
        }
        catch (SocketException e)
        {
            return new ProbeResult(false, e.SocketErrorCode.ToString());
        }
        catch (IOException e)
        {
            return new ProbeResult(false, e.Message);
        }
        catch (AuthenticationException e)
        {
            return new ProbeResult(false, "TLS: " + e.Message);
        }
    }

    private Socket Open(SocketType type, ProtocolType protocol)
    {
        var name = netns();
        if (name is null)
        {
            return new Socket(AddressFamily.InterNetwork, type, protocol);
        }

        using (NetworkNamespace.Enter(name))
        {
            return new Socket(AddressFamily.InterNetwork, type, protocol);
        }
    }

    private async Task<ProbeResult> Tcp(IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        using var socket = Open(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
        return new ProbeResult(true, "connected");
    }

    private async Task<ProbeResult> Http(IPEndPoint endpoint, HealthCheckSpec check, CancellationToken cancellationToken)
    {
        using var socket = Open(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
        Stream stream = new NetworkStream(socket, ownsSocket: false);
        await using (stream.ConfigureAwait(false))
        {
            if (check.Type == "https")
            {
                var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = tls;
                await tls.AuthenticateAsClientAsync(
                    new SslClientAuthenticationOptions
                    {
                        TargetHost = endpoint.Address.ToString(),
#pragma warning disable CA5359 // A health check asks whether the backend answers; backends often present self-signed certificates.
                        RemoteCertificateValidationCallback = static (_, _, _, _) => true,
#pragma warning restore CA5359
                    },
                    cancellationToken).ConfigureAwait(false);
            }

            var request = $"GET {check.Path} HTTP/1.1\r\nHost: {endpoint}\r\nUser-Agent: isthmus-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(request), cancellationToken).ConfigureAwait(false);
            var buffer = ArrayPool<byte>.Shared.Rent(MaxResponse);
            try
            {
                var length = 0;
                int n;
                while (length < MaxResponse && (n = await stream.ReadAsync(buffer.AsMemory(length, MaxResponse - length), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    length += n;
                }

                return HttpVerdict(Encoding.UTF8.GetString(buffer, 0, length), check);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>Judges an HTTP/1.x response: the status line's code, then the body substring (RFC 9112 section 4).</summary>
    public static ProbeResult HttpVerdict(string response, HealthCheckSpec check)
    {
        var lineEnd = response.IndexOf("\r\n", StringComparison.Ordinal);
        var statusLine = lineEnd < 0 ? response : response[..lineEnd];
        var parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var status))
        {
            return new ProbeResult(false, response.Length == 0 ? "connection closed without a response" : "not an HTTP/1.x response");
        }

        if (status != check.ExpectStatus)
        {
            return new ProbeResult(false, $"HTTP {status}, expected {check.ExpectStatus}");
        }

        if (check.BodyMatch is { Length: > 0 } match)
        {
            var bodyStart = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var body = bodyStart < 0 ? "" : response[(bodyStart + 4)..];
            if (!body.Contains(match, StringComparison.Ordinal))
            {
                return new ProbeResult(false, $"HTTP {status}, body lacks '{match}'");
            }
        }

        return new ProbeResult(true, $"HTTP {status}");
    }

    private async Task<ProbeResult> Udp(IPEndPoint endpoint, HealthCheckSpec check, CancellationToken cancellationToken)
    {
        using var socket = Open(SocketType.Dgram, ProtocolType.Udp);
        await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
        await socket.SendAsync(Encoding.UTF8.GetBytes(check.UdpPayload), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        var buffer = new byte[2048];
        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        if (check.BodyMatch is { Length: > 0 } match && !Encoding.UTF8.GetString(buffer, 0, n).Contains(match, StringComparison.Ordinal))
        {
            return new ProbeResult(false, $"reply of {n} bytes lacks '{match}'");
        }

        return new ProbeResult(true, $"reply of {n} bytes");
    }
}
