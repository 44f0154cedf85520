using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Isthmus.Cli;

/// <summary>
/// The REST API as the CLI uses it: the same endpoints the web console and automation use. Errors
/// come back as RFC 9457 problem details and are printed with their field paths.
/// </summary>
public sealed class ApplianceClient(HttpClient http) : IDisposable
{
    public static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true };

    public static ApplianceClient Create(string url, string? token, string? user, string? password, bool insecure)
    {
        var handler = new HttpClientHandler();
        if (insecure)
        {
            // The appliance's generated certificate is self-signed: --insecure accepts it (pin it in production).
#pragma warning disable CA5400, CA5359
            handler.ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator;
#pragma warning restore CA5400, CA5359
        }

        var http = new HttpClient(handler) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(6) };
        if (token is { Length: > 0 })
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        else if (user is { Length: > 0 })
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        }

        return new ApplianceClient(http);
    }

    public async Task<(bool Ok, JsonNode? Body, string Text)> SendAsync(HttpMethod method, string path, JsonNode? body = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }

        using var response = await http.SendAsync(request).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        JsonNode? node = null;
        if (text.Length > 0 && response.Content.Headers.ContentType?.MediaType?.Contains("json", StringComparison.Ordinal) == true)
        {
            node = JsonNode.Parse(text);
        }

        return (response.IsSuccessStatusCode, node, response.IsSuccessStatusCode ? text : Describe((int)response.StatusCode, node, text));
    }

    public async Task<(bool Ok, byte[] Bytes, string Error)> DownloadAsync(string path)
    {
        using var response = await http.GetAsync(new Uri(path, UriKind.Relative)).ConfigureAwait(false);
        var bytes = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
        return response.IsSuccessStatusCode
            ? (true, bytes, "")
            : (false, bytes, Describe((int)response.StatusCode, TryParse(bytes), Encoding.UTF8.GetString(bytes)));
    }

    public void Dispose() => http.Dispose();

    /// <summary>"HTTP 400: title" then one "  path: message" line per error.</summary>
    public static string Describe(int status, JsonNode? problem, string text)
    {
        if (problem is not JsonObject p)
        {
            return $"HTTP {status}: {text}";
        }

        var sb = new StringBuilder($"HTTP {status}: {(string?)p["title"] ?? ""}");
        if ((string?)p["detail"] is { } detail)
        {
            sb.Append(" (").Append(detail).Append(')');
        }

        if (p["errors"] is JsonObject errors)
        {
            foreach (var (path, messages) in errors)
            {
                foreach (var message in messages!.AsArray())
                {
                    sb.AppendLine().Append("  ").Append(path).Append(": ").Append((string?)message);
                }
            }
        }

        return sb.ToString();
    }

    private static JsonNode? TryParse(byte[] bytes)
    {
        try
        {
            return JsonNode.Parse(bytes);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
