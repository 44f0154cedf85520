using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.Logging;
using Isthmus.ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Isthmus.ControlPlane.Tests.Api;

public sealed partial class SetupApiTests
{
    [Fact]
    public async Task Without_first_boot_credentials_a_one_time_setup_token_is_logged_and_creates_the_first_admin()
    {
        using var factory = new ApplianceFactory(seed: null, new FirstBootOptions(Documents.Lab(credentials: false)));
        _ = factory.Server;
        var line = Assert.Single(factory.Logs.Lines, l => l.EventId == LogEvents.SetupTokenIssued).Message;
        var token = SetupToken().Match(line).Groups[1].Value;
        var anonymous = factory.CreateClient();

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(new Uri("/api/v1/config", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await anonymous.PostAsJsonAsync("/api/v1/setup", new { token = "guess", user = "root", password = "a long enough password" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.PostAsJsonAsync("/api/v1/setup", new { token, user = "root", password = "a long enough password" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await anonymous.PostAsJsonAsync("/api/v1/setup", new { token, user = "evil", password = "a long enough password" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await factory.WithBasic("root", "a long enough password").GetAsync(new Uri("/api/v1/config", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task First_boot_with_a_password_creates_the_admin_and_no_setup_token()
    {
        using var factory = new ApplianceFactory(seed: null, new FirstBootOptions(Documents.Lab(credentials: false), AdminPassword: "first boot password"));
        _ = factory.Server;
        Assert.False(factory.Services.GetRequiredService<FirstBoot>().AwaitingSetup);
        Assert.Equal(1, factory.Runtime.SnapshotVersion);
        Assert.DoesNotContain(factory.Logs.Lines, l => l.EventId == LogEvents.SetupTokenIssued);
        Assert.Equal(HttpStatusCode.OK, (await factory.WithBasic("admin", "first boot password").GetAsync(new Uri("/api/v1/config", UriKind.Relative))).StatusCode);
    }

    [GeneratedRegex("setup token: (\\S+)")]
    private static partial Regex SetupToken();
}
