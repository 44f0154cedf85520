using System.Net;
using System.Net.Sockets;

namespace Isthmus.Mobility.Bgp.Session;

/// <summary>
/// The passive side (RFC 4271 §8.2.1.1, PassiveTcpEstablishment): one listening TCP socket (port 179 in the
/// appliance's data-plane namespace) whose accepted connections go to the session of the peer they come
/// from (<see cref="BgpSession.AcceptIncoming"/>, which does the §6.8 collision detection). A connection
/// from an address that is no configured passive peer is closed at once and counted.
/// </summary>
public sealed class BgpListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly Func<IPAddress, BgpSession?> _sessionFor;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private long _refused;
    private long _accepted;

    /// <param name="socket">An unbound TCP socket (made where the sessions live: the data-plane namespace).</param>
    /// <param name="endpoint">Where to listen (<c>0.0.0.0:179</c>).</param>
    /// <param name="sessionFor">The session for a peer address (IPv4-mapped addresses are unmapped first), or null to refuse.</param>
    public BgpListener(Socket socket, IPEndPoint endpoint, Func<IPAddress, BgpSession?> sessionFor)
    {
        ArgumentNullException.ThrowIfNull(socket);
        _socket = socket;
        _sessionFor = sessionFor;
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _socket.Bind(endpoint);
        _socket.Listen(16);
        _accepting = Task.Run(AcceptAsync);
    }

    public int Port => ((IPEndPoint)_socket.LocalEndPoint!).Port;

    /// <summary>Connections handed to a session.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections from addresses that are no passive peer, closed.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _accepting.ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            var remote = (accepted.RemoteEndPoint as IPEndPoint)?.Address;
            if (remote is { IsIPv4MappedToIPv6: true })
            {
                remote = remote.MapToIPv4();
            }

            if (remote is not null && _sessionFor(remote) is { } session)
            {
                Interlocked.Increment(ref _accepted);
                session.AcceptIncoming(accepted);
            }
            else
            {
                Interlocked.Increment(ref _refused);
                accepted.Dispose();
            }
        }
    }
}
