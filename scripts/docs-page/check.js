// Loads /api/docs in headless Chromium (Debian's, through puppeteer-core: no browser
// download), lists the operations the page shows, runs "Try it out" on the trunk list with
// a token given through the page's own authorization, and keeps a screenshot.
// Usage: node check.js <base url> <token> <screenshot path> <chromium path>
const puppeteer = require("puppeteer-core");

(async () => {
  const [base, token, screenshot, chromium] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const outside = [];
    page.on("request", (request) => {
      const url = request.url();
      if (/^(https?|wss?):/.test(url) && !url.startsWith(base)) outside.push(url);
    });
    // Anything the page's Content-Security-Policy refused: must stay empty.
    const violations = [];
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    await page.exposeFunction("reportViolation", (text) => violations.push(text));
    await page.evaluateOnNewDocument(() => {
      document.addEventListener("securitypolicyviolation", (event) =>
        window.reportViolation(`${event.violatedDirective} ${event.blockedURI}`),
      );
    });
    const response = await page.goto(`${base}/api/docs`, { waitUntil: "networkidle0", timeout: 30000 });
    const policy = response.headers()["content-security-policy"] || "";
    await page.waitForSelector(".opblock", { timeout: 30000 });
    const operations = await page.$$eval(".opblock", (blocks) =>
      blocks.map((block) => ({
        method: block.querySelector(".opblock-summary-method")?.textContent.trim().toLowerCase(),
        path: block.querySelector(".opblock-summary-path")?.getAttribute("data-path"),
      })),
    );
    await page.evaluate((value) => window.ui.preauthorizeApiKey("bearer", value), token);
    const list = "#operations-sip-trunks-listSipTrunks";
    await page.click(`${list} .opblock-summary`);
    await page.waitForSelector(`${list} .try-out__btn`, { timeout: 10000 });
    await page.click(`${list} .try-out__btn`);
    await page.waitForSelector(`${list} .execute`, { timeout: 10000 });
    await page.click(`${list} .execute`);
    const cell = `${list} .live-responses-table tr.response .response-col_status`;
    await page.waitForSelector(cell, { timeout: 15000 });
    const status = await page.$eval(cell, (element) => element.textContent.trim());
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ operations, status, outside, policy, violations }));
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
