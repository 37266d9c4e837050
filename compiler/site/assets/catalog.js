// Search on the catalog index: filters the services and participants tables by SID, name, owner,
// operations, legal basis and purpose of the grants; the headings' counts follow the filter.
// The data comes from the JSON script tag in the page (file:// pages cannot fetch).
"use strict";
(function () {
  var input = document.getElementById("search");
  var source = document.getElementById("catalog-data");
  if (!input || !source) { return; }
  var data = JSON.parse(source.textContent);
  var count = document.getElementById("search-count");

  function norm(text) {
    return String(text).toLocaleLowerCase("ru").replace(/ё/g, "е").replace(/\s+/g, " ");
  }

  function entries(items, key, attr) {
    return items.map(function (item) {
      return { row: document.querySelector("tr[" + attr + "=\"" + CSS.escape(item[key]) + "\"]"),
               text: norm(item.search) };
    }).filter(function (entry) { return entry.row !== null; });
  }
  var services = entries(data.services, "sid", "data-sid");
  var participants = entries(data.participants, "id", "data-participant");

  function filter(list, query, empty) {
    var shown = 0;
    list.forEach(function (entry) {
      var hit = entry.text.indexOf(query) !== -1;
      entry.row.hidden = !hit;
      if (hit) { shown += 1; }
    });
    document.getElementById(empty).hidden = shown !== 0;
    if (list.length) { list[0].row.closest("table").hidden = shown === 0; }
    return shown;
  }

  function apply() {
    var query = norm(input.value).trim().replace(/\s+/g, " ");  // a phrase: part of a SID or a name
    var found = filter(services, query, "no-services");
    var people = filter(participants, query, "no-participants");
    document.getElementById("services-count").textContent = String(found);  // counts follow the filter
    document.getElementById("participants-count").textContent = String(people);
    count.textContent = query ? "найдено сервисов: " + found + ", участников: " + people : "";
  }

  input.addEventListener("input", apply);
  apply();
})();
